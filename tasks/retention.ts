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
 * after it was created, so only ids created before the cutoff are read:
 * the old history plus one task per resource, in pages of {@linkcode PAGE}.
 * Deletes go in transactions of {@linkcode DELETE_BATCH}, each comparing
 * the mod revision it read (a task written meanwhile stays) and the
 * caller's fence (the round's lock); a batch that fails is retried one task
 * at a time.
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

/** Task documents read per page. */
export const PAGE = 200;

/** Deletes per transaction: 1 fence + 2 x 60 = 121 operations, under 128. */
export const DELETE_BATCH = 60;

/** Resources whose existence is checked at once. */
const CHECKS = 16;

/** What a retention pass did. */
export interface RetentionResult {
  /** Task documents read (all created before the cutoff). */
  scanned: number;
  deleted: number;
  /** Old finished tasks kept as the newest of an existing resource. */
  kept: number;
  /** Tasks not deleted because they changed after they were read. */
  changed: number;
  /** True when the fence failed: the pass stopped. */
  fenced: boolean;
}

export interface RetentionOptions {
  retentionMs: number;
  now?: Date;
  /** A transaction holding the caller's compares (e.g. its lock). */
  fence?: () => Txn;
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
    deleted: 0,
    kept: 0,
    changed: 0,
    fenced: false,
  };
  /** The newest expired finished task read so far, per resource. */
  const held = new Map<string, Kv<Task>>();
  const doomed: Kv<Task>[] = [];
  const flush = async (all: boolean) => {
    while (!r.fenced && doomed.length >= (all ? 1 : DELETE_BATCH)) {
      await remove(fence, doomed.splice(0, DELETE_BATCH), r);
    }
  };
  let from: string = keys.tasks;
  const before = taskKeyAt(cutoff);
  while (!r.fenced) {
    const page = await store.list(keys.tasks, Task, {
      from,
      before,
      limit: PAGE,
    });
    for (const kv of page.items) {
      r.scanned++;
      const t = kv.value;
      if (!isFinal(t.state)) continue;
      const expired = Date.parse(t.updatedAt) <= cutoff;
      const res = resourceOf(t);
      if (res === null) {
        if (expired) doomed.push(kv);
        continue;
      }
      const prev = held.get(res);
      if (prev) doomed.push(prev);
      if (expired) held.set(res, kv);
      else held.delete(res);
    }
    await flush(false);
    const read = [...page.items, ...page.unreadable].map((d) => d.key).sort();
    if (read.length < PAGE) break;
    from = `${read[read.length - 1]}\0`;
  }
  const last = [...held.entries()];
  for (let i = 0; i < last.length && !r.fenced; i += CHECKS) {
    const slice = last.slice(i, i + CHECKS);
    const exist = await Promise.all(slice.map(([res]) => exists(store, res)));
    slice.forEach(([, kv], j) => exist[j] ? r.kept++ : doomed.push(kv));
    await flush(false);
  }
  await flush(true);
  return r;
}

/** True unless the resource's key is absent (an unreadable one exists). */
async function exists(store: Store, key: string): Promise<boolean> {
  try {
    return (await store.get(key, z.unknown())) !== null;
  } catch {
    return true;
  }
}

/** Deletes `batch`, each compared on its revision; then one at a time. */
async function remove(
  fence: () => Txn,
  batch: Kv<Task>[],
  r: RetentionResult,
): Promise<void> {
  const del = (txn: Txn, kv: Kv<Task>) =>
    txn.ifModRevision(kv.key, kv.modRevision).delete(kv.key);
  const txn = fence();
  for (const kv of batch) del(txn, kv);
  if ((await txn.commit()).ok) {
    r.deleted += batch.length;
    return;
  }
  for (const kv of batch) {
    if ((await del(fence(), kv).commit()).ok) {
      r.deleted++;
    } else if (!(await fence().commit()).ok) {
      r.fenced = true;
      return;
    } else {
      r.changed++;
    }
  }
}
