/**
 * Task retention: a finished task (succeeded, failed, cancelled) is kept
 * `maintenance.taskRetentionSeconds` after it finished, then deleted by the
 * maintenance round (tasks/maintenance_round.ts), so the task history does
 * not grow with the months. The newest finished task of each resource
 * (`payload.vm`, `payload.image` or `payload.host`) created before the
 * cutoff stays while the resource exists: a VM untouched for a year still
 * shows how it was made, and a resource keeps every task of the retention
 * window plus at most one older one. Unfinished tasks are never touched.
 *
 * Task ids sort by creation time (core/keys.ts `newId`) and a task finishes
 * after it was created, so a round reads only ids created before its
 * cutoff, and only those no earlier round read: `retention/cursor` holds
 * the first id not read yet (`before`) and the ids read while unfinished or
 * finished too recently (`pending`, at most {@linkcode MAX_PENDING}),
 * which each round reads again by id; when more did not fit, the history
 * is read once more from its start after this pass (`overflow`). The
 * task a resource keeps is named by `retention/kept/<resource key>`: a
 * newer expired task of the resource replaces it (the old one is deleted),
 * and once the resource is gone (its delete task expires too) both go. A
 * round reads at most {@linkcode ROUND_SCAN} tasks, in pages of
 * {@linkcode PAGE}; the next round goes on from the cursor.
 *
 * Writes go in transactions of at most 120 operations
 * (tasks/retention_writes.ts), each delete comparing the mod revision it read (a task written meanwhile
 * stays), each `kept` change its read revision, all the caller's fence
 * (the round's lock); a batch that fails is retried one change at a time.
 *
 * @example
 * ```ts
 * const r = await collectTasks(store, { retentionMs: 7 * 86_400_000 });
 * console.log(r.deleted, r.kept);
 * ```
 */
import { z } from "zod";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import type { Kv, Store, Txn } from "../core/store.ts";
import { isFinal } from "./state.ts";
import { type Change, commitChanges } from "./retention_writes.ts";

/** Task documents read per page. */
export const PAGE = 200;

/** Task documents a round reads at most (besides `pending`). */
export const ROUND_SCAN = 5_000;

/** Ids a cursor carries to read again. */
export const MAX_PENDING = 100;

/** Resources whose `kept` record and existence are read at once. */
const CHECKS = 16;

const CURSOR = keys.retentionCursor;
const keptKey = keys.retentionKept;
const Cursor = z.object({
  before: z.string(),
  pending: z.array(z.string()),
  overflow: z.boolean(),
});
const Kept = z.object({ task: z.string() });

/** What a retention pass did. */
export interface RetentionResult {
  /** Task documents read (created before the cutoff, not read before). */
  scanned: number;
  /** Pending tasks of earlier rounds read again. */
  rechecked: number;
  deleted: number;
  /** Old finished tasks kept as the newest of an existing resource. */
  kept: number;
  /** Changes not made because what they read changed meanwhile. */
  changed: number;
  /** True when the fence failed: the pass stopped. */
  fenced: boolean;
}

export interface RetentionOptions {
  retentionMs: number;
  now?: Date;
  /** A transaction holding the caller's compares (e.g. its lock). */
  fence?: () => Txn;
  /** Tasks read at most; default {@linkcode ROUND_SCAN}. */
  maxScan?: number;
}

/** The key of the resource a task is about, or null. */
export function resourceOf(t: Task): string | null {
  const p = t.payload;
  if (typeof p.vm === "string") return keys.vm(p.vm);
  if (typeof p.image === "string") return keys.image(p.image);
  if (typeof p.host === "string") return keys.host(p.host);
  return null;
}

/** The first task key created at `ms` or later (ids: `t-<ms base 36>-`). */
export function taskKeyAt(ms: number): string {
  return keys.task(`t-${ms.toString(36).padStart(9, "0")}`);
}

/** Deletes expired finished tasks (see the module comment). */
export async function collectTasks(
  store: Store,
  opts: RetentionOptions,
): Promise<RetentionResult> {
  const cutoff = (opts.now ?? new Date()).getTime() - opts.retentionMs;
  const fence = opts.fence ?? (() => store.txn());
  const r: RetentionResult = {
    scanned: 0,
    rechecked: 0,
    deleted: 0,
    kept: 0,
    changed: 0,
    fenced: false,
  };
  const cur = (await store.get(CURSOR, Cursor))?.value ??
    { before: keys.tasks, pending: [], overflow: false };
  const expired = (t: Task) =>
    isFinal(t.state) && Date.parse(t.updatedAt) <= cutoff;
  const pending: string[] = [];
  const due: Kv<Task>[] = [];
  // Pending tasks of earlier rounds: finished and expired by now?
  for (let i = 0; i < cur.pending.length; i += CHECKS) {
    const got = await Promise.all(
      cur.pending.slice(i, i + CHECKS).map((k) =>
        store.get(k, Task).catch(() => "unreadable" as const)
      ),
    );
    got.forEach((kv, j) => {
      if (!kv) return;
      r.rechecked++;
      if (kv !== "unreadable" && expired(kv.value)) due.push(kv);
      else pending.push(cur.pending[i + j]);
    });
  }
  await settle(store, fence, due, r);

  let from = cur.before;
  let overflow = cur.overflow;
  const before = taskKeyAt(cutoff);
  const max = opts.maxScan ?? ROUND_SCAN;
  while (!r.fenced && from < before && r.scanned < max) {
    const limit = Math.min(PAGE, max - r.scanned);
    const page = await store.list(keys.tasks, Task, { from, before, limit });
    const read: (Kv<Task> | { key: string })[] = [
      ...page.items,
      ...page.unreadable,
    ].sort((a, b) => a.key < b.key ? -1 : 1);
    const chunk: Kv<Task>[] = [];
    for (const d of read) {
      r.scanned++;
      if ("value" in d && expired(d.value)) chunk.push(d);
      else if (pending.length < MAX_PENDING) pending.push(d.key);
      else overflow = true;
    }
    await settle(store, fence, chunk, r);
    from = read.length < limit ? before : `${read[read.length - 1].key}\0`;
  }
  if (r.fenced) return r;
  // Pending ids that did not fit: one more pass over the whole history
  // once this one is done.
  const next = from >= before && overflow
    ? { before: keys.tasks, pending, overflow: false }
    : { before: from, pending, overflow };
  if (!(await fence().put(CURSOR, next).commit()).ok) r.fenced = true;
  return r;
}

/**
 * Applies expired finished tasks `items` (in key order, from one window):
 * a task about no resource is deleted; of a resource's tasks the newest
 * replaces its `kept` task (deleted), the others are deleted, and all go,
 * `kept` too, when the resource is gone.
 */
async function settle(
  store: Store,
  fence: () => Txn,
  items: Kv<Task>[],
  r: RetentionResult,
): Promise<void> {
  const changes: Change[] = [];
  const newest = new Map<string, Kv<Task>>();
  for (const kv of items) {
    const res = resourceOf(kv.value);
    if (res === null) {
      changes.push({ doomed: [kv] });
      continue;
    }
    const prev = newest.get(res);
    if (prev) changes.push({ doomed: [prev] });
    newest.set(res, kv);
  }
  const last = [...newest.entries()];
  for (let i = 0; i < last.length; i += CHECKS) {
    const slice = last.slice(i, i + CHECKS);
    const read = await Promise.all(slice.map(async ([res]) => ({
      kept: await store.get(keptKey(res), Kept).catch(() => undefined),
      exists: await exists(store, res),
    })));
    slice.forEach(([res, kv], j) => {
      const { kept, exists } = read[j];
      // An unreadable record is left alone, and so is its resource.
      if (kept === undefined) return;
      const c: Change = {
        doomed: [],
        kept: { key: keptKey(res), revision: kept?.modRevision ?? "0" },
      };
      const old = kept?.value.task;
      if (old === kv.value.id && exists) {
        // Kept already (a pass over the whole history).
        r.kept++;
        return;
      }
      if (old && old > kv.value.id) {
        // A late pending task older than the one kept.
        c.doomed.push(kv);
        delete c.kept;
      } else {
        if (old && old !== kv.value.id) c.oldTask = keys.task(old);
        if (exists) {
          c.kept!.task = kv.value.id;
          r.kept++;
        } else c.doomed.push(kv);
      }
      changes.push(c);
    });
  }
  await commitChanges(fence, changes, r);
}

/** True unless the resource's key is absent (an unreadable one exists). */
async function exists(store: Store, key: string): Promise<boolean> {
  try {
    return (await store.get(key, z.unknown())) !== null;
  } catch {
    return true;
  }
}
