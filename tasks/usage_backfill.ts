/**
 * The usage backfill of the maintenance round (tasks/maintenance_round.ts):
 * once in a cluster's life, it sums every owner's VM and network documents
 * in one paged pass (resources/quotas/usage.ts `sumUsage`) and writes
 * `usage/<owner>` for each owner who has none, comparing "still absent"
 * and the round's lock, then `usage-backfilled`. Exact for the same reason
 * as a request's computed usage: a change of the owner's documents after
 * the pass began writes their usage document, which fails the compare (so
 * a document that is absent when written saw no such change, and the pass
 * counted each of their documents once). From then on every owner holding
 * anything has a document, so an absent one means nothing held, and
 * requests never compute usage.
 *
 * @example
 * ```ts
 * const r = await backfillUsage(store, { by: "h1", fence });
 * console.log(r.written);
 * ```
 */
import { keys } from "../core/keys.ts";
import { UsageBackfilled } from "../core/quota_schemas.ts";
import type { Store, Txn } from "../core/store.ts";
import { sumUsage } from "../resources/quotas/usage.ts";

/** What the backfill did. */
export interface BackfillResult {
  /** Owners whose usage document it wrote. */
  written: number;
  /** Owners of the documents counted. */
  users: number;
  /** True when the backfill ran before (nothing read). */
  done: boolean;
  /** True when the round lost its lock (no `usage-backfilled` written). */
  fenced: boolean;
}

export interface BackfillOptions {
  /** Who runs it. */
  by: string;
  /** A transaction that holds only while the round holds its lock. */
  fence: () => Txn;
  now?: Date;
}

/** Runs the backfill (see the module comment) unless it ran before. */
export async function backfillUsage(
  store: Store,
  opts: BackfillOptions,
): Promise<BackfillResult> {
  const result = { written: 0, users: 0, done: false, fenced: false };
  if (await store.get(keys.usageBackfilled, UsageBackfilled)) {
    return { ...result, done: true };
  }
  const sums = await sumUsage(store);
  result.users = sums.size;
  for (const [owner, usage] of sums) {
    const key = keys.usage(owner);
    if ((await opts.fence().ifAbsent(key).put(key, usage).commit()).ok) {
      result.written++;
    } else if (!(await opts.fence().commit()).ok) {
      return { ...result, fenced: true };
    }
  }
  const mark: UsageBackfilled = {
    by: opts.by,
    at: (opts.now ?? new Date()).toISOString(),
    users: sums.size,
  };
  const k = keys.usageBackfilled;
  const r = await opts.fence().ifAbsent(k).put(k, mark).commit();
  if (!r.ok && !(await opts.fence().commit()).ok) {
    return { ...result, fenced: true };
  }
  return result;
}
