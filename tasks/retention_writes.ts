/**
 * The writes of task retention (tasks/retention.ts): changes, each a few
 * deletes and a `retention/kept/` record, committed in transactions of at
 * most `BATCH_OPS` operations with the caller's fence; a transaction that
 * fails is retried one change at a time, so one changed task costs only
 * its own change.
 *
 * @example
 * ```ts
 * await commitChanges(fence, [{ doomed: [kv] }], result);
 * ```
 */
import type { Task } from "../core/schemas.ts";
import type { Kv, Txn } from "../core/store.ts";

/** Operations per transaction, with the fence: under etcd's 128. */
const BATCH_OPS = 120;

/** One decision of retention, made whole or not at all. */
export interface Change {
  /** Tasks to delete, each compared on the mod revision read. */
  doomed: Kv<Task>[];
  /**
   * A resource's kept record, compared on the revision read ("0": absent);
   * set to `task`, or deleted when there is none.
   */
  kept?: { key: string; revision: string; task?: string };
  /** The task the record named before: deleted with the change. */
  oldTask?: string;
}

/** What `commitChanges` counts. */
export interface WriteCounts {
  deleted: number;
  changed: number;
  fenced: boolean;
}

function size(c: Change): number {
  return 2 * c.doomed.length + (c.kept ? 2 : 0) + (c.oldTask ? 1 : 0);
}

function add(txn: Txn, c: Change): Txn {
  for (const kv of c.doomed) {
    txn.ifModRevision(kv.key, kv.modRevision).delete(kv.key);
  }
  if (c.kept) {
    txn.ifModRevision(c.kept.key, c.kept.revision);
    if (c.kept.task) txn.put(c.kept.key, { task: c.kept.task });
    else txn.delete(c.kept.key);
  }
  if (c.oldTask) txn.delete(c.oldTask);
  return txn;
}

const deletes = (c: Change) => c.doomed.length + (c.oldTask ? 1 : 0);

/** Commits `changes` (see the module comment); counts into `r`. */
export async function commitChanges(
  fence: () => Txn,
  changes: Change[],
  r: WriteCounts,
): Promise<void> {
  const todo = changes.filter((c) => size(c) > 0);
  while (todo.length && !r.fenced) {
    const batch: Change[] = [];
    let ops = 1;
    while (todo.length && ops + size(todo[0]) <= BATCH_OPS) {
      ops += size(todo[0]);
      batch.push(todo.shift()!);
    }
    // A change larger than a batch goes alone.
    if (!batch.length) batch.push(todo.shift()!);
    const txn = fence();
    for (const c of batch) add(txn, c);
    if ((await txn.commit()).ok) {
      for (const c of batch) r.deleted += deletes(c);
      continue;
    }
    for (const c of batch) {
      if ((await add(fence(), c).commit()).ok) {
        r.deleted += deletes(c);
      } else if (!(await fence().commit()).ok) {
        r.fenced = true;
        return;
      } else {
        r.changed++;
      }
    }
  }
}
