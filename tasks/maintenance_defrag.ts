/**
 * The etcd step of the maintenance round (tasks/maintenance_round.ts):
 * defragmenting the members whose free space (file size minus size in
 * use) is at least `maintenance.defragFreeRatio` of their file and
 * `maintenance.defragMinFreeBytes`. A member answers nothing while it is
 * defragmented, so:
 *
 * - members go one at a time, followers first and the leader last (the
 *   leader's apply loop carries every write), and the next member waits
 *   until the previous one answers `status` again (a defragmentation goes
 *   on in the server after the client's deadline);
 * - in a cluster of several members, none is defragmented while one does
 *   not answer: blocking another could cost the quorum;
 * - the only member of a one-member cluster (the embedded etcd) blocks
 *   every request, and so every worker's lease keep-alive, while it is
 *   defragmented: it is defragmented only once its file reaches
 *   {@linkcode SINGLE_QUOTA_SHARE} of the quota
 *   (`maintenance.embeddedEtcd.quotaBytes`), where etcd would soon refuse
 *   writes. Compacted pages are reused meanwhile, so the file does not grow
 *   past the largest size in use;
 * - the caller's fence (the round's lock) is checked before each member.
 *
 * @example
 * ```ts
 * const members = await defragMembers(store, config.maintenance, { log });
 * ```
 */
import type { Config } from "../core/config.ts";
import {
  defragment,
  type MemberStatus,
  memberStatuses,
} from "../core/etcd_members.ts";
import type { Logger } from "../core/log.ts";
import type { Store } from "../core/store.ts";
import { sleep } from "../core/watch.ts";

/** A one-member cluster is defragmented from this share of its quota on. */
export const SINGLE_QUOTA_SHARE = 0.8;

/** What the round did to one etcd member. */
export interface MemberResult {
  name: string;
  leader: boolean;
  /** File size and size in use before, bytes. */
  dbSize: number;
  dbSizeInUse: number;
  defragmented: boolean;
  /** File size after the defragmentation. */
  dbSizeAfter?: number;
  /** Why a member with enough free space was not defragmented. */
  skipped?: string;
  error?: string;
}

export interface DefragOptions {
  log?: Logger;
  /** Checked before each member: false stops the step (lock lost). */
  fence?: () => Promise<boolean>;
  /** How long a defragmented member gets to answer `status` again. */
  recoverMs?: number;
}

/**
 * Defragments the members that need it (see the module comment); the
 * results in the order the members were taken, followers first.
 */
export async function defragMembers(
  store: Store,
  m: Config["maintenance"],
  { log, fence = () => Promise.resolve(true), recoverMs = 60_000 }:
    DefragOptions = {},
): Promise<MemberResult[]> {
  const members = await memberStatuses(store);
  const single = members.length === 1;
  const ordered = [
    ...members.filter((s) => !s.leader),
    ...members.filter((s) => s.leader),
  ];
  const down = members.find((s) => s.error);
  let stop: string | undefined;
  const out: MemberResult[] = [];
  for (const s of ordered) {
    const r: MemberResult = {
      name: s.name,
      leader: s.leader,
      dbSize: s.dbSize,
      dbSizeInUse: s.dbSizeInUse,
      defragmented: false,
      ...(s.error ? { error: s.error } : {}),
    };
    out.push(r);
    if (s.error || !needsDefrag(s, m, single)) continue;
    if (down) {
      r.skipped =
        `member ${down.name} does not answer: defragmenting another could cost the quorum`;
      continue;
    }
    if (!stop && !(await fence())) stop = "lost the lock";
    if (stop) {
      r.skipped = stop;
      continue;
    }
    try {
      await defragment(store, s, { single });
      r.defragmented = true;
    } catch (err) {
      r.error = (err as Error).message;
      log?.warn("cannot defragment etcd member", {
        member: s.name,
        error: r.error,
      });
    }
    const after = await answering(store, s.name, recoverMs);
    if (after) r.dbSizeAfter = after.dbSize;
    else stop = `member ${s.name} did not answer after its defragmentation`;
    if (r.defragmented) {
      log?.info("etcd member defragmented", {
        member: s.name,
        leader: s.leader,
        before: s.dbSize,
        after: r.dbSizeAfter,
      });
    }
  }
  return out;
}

/** Whether member `s` has enough free space to be defragmented. */
function needsDefrag(
  s: MemberStatus,
  m: Config["maintenance"],
  single: boolean,
): boolean {
  const free = s.dbSize - s.dbSizeInUse;
  if (free < m.defragMinFreeBytes || free < m.defragFreeRatio * s.dbSize) {
    return false;
  }
  return !single || s.dbSize >= SINGLE_QUOTA_SHARE * m.embeddedEtcd.quotaBytes;
}

/** Member `name`'s status once it answers again; null after `timeoutMs`. */
async function answering(
  store: Store,
  name: string,
  timeoutMs: number,
): Promise<MemberStatus | null> {
  const end = Date.now() + timeoutMs;
  while (true) {
    const s = (await memberStatuses(store).catch(() => [])).find((x) =>
      x.name === name
    );
    if (s && !s.error) return s;
    if (Date.now() > end) return null;
    await sleep(500);
  }
}
