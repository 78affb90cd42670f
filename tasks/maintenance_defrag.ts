/**
 * The etcd step of the maintenance round (tasks/maintenance_round.ts):
 * defragmenting the members whose free space passes
 * `maintenance.defragFreeRatio` and `maintenance.defragMinFreeBytes`.
 *
 * @example
 * ```ts
 * const members = await defragMembers(store, config.maintenance, log);
 * ```
 */
import type { Config } from "../core/config.ts";
import { defragment, memberStatuses } from "../core/etcd_members.ts";
import type { Logger } from "../core/log.ts";
import type { Store } from "../core/store.ts";

/** What the round did to one etcd member. */
export interface MemberResult {
  name: string;
  /** File size and size in use before, bytes. */
  dbSize: number;
  dbSizeInUse: number;
  defragmented: boolean;
  /** File size after the defragmentation. */
  dbSizeAfter?: number;
  error?: string;
}

/**
 * Defragments, one after the other, the members whose free space is at
 * least `defragFreeRatio` of their file and `defragMinFreeBytes`.
 */
export async function defragMembers(
  store: Store,
  m: Config["maintenance"],
  log?: Logger,
): Promise<MemberResult[]> {
  const members = await memberStatuses(store);
  const out: MemberResult[] = [];
  for (const s of members) {
    const r: MemberResult = {
      name: s.name,
      dbSize: s.dbSize,
      dbSizeInUse: s.dbSizeInUse,
      defragmented: false,
      ...(s.error ? { error: s.error } : {}),
    };
    out.push(r);
    const free = s.dbSize - s.dbSizeInUse;
    if (s.error || free < m.defragMinFreeBytes) continue;
    if (free < m.defragFreeRatio * s.dbSize) continue;
    try {
      await defragment(store, s, { single: members.length === 1 });
      r.defragmented = true;
      const after = (await memberStatuses(store)).find((x) =>
        x.name === s.name
      );
      if (after && !after.error) r.dbSizeAfter = after.dbSize;
      log?.info("etcd member defragmented", {
        member: s.name,
        before: s.dbSize,
        after: r.dbSizeAfter,
      });
    } catch (err) {
      r.error = (err as Error).message;
      log?.warn("cannot defragment etcd member", {
        member: s.name,
        error: r.error,
      });
    }
  }
  return out;
}
