/**
 * Completing a task with its handler's outcome: the handler's writes and
 * the task's end in one transaction (tasks/queue.ts `complete`). When that
 * loses a compare and the handler can rebuild its writes (`again`, e.g.
 * `vm.delete` when only its owner's usage document changed), they are
 * rebuilt and committed again, after a random wait, up to
 * {@linkcode AGAIN} times, instead of running the whole handler again.
 *
 * @example
 * ```ts
 * if (!await completeOutcome(store, task, worker, await handler(ctx))) rerun();
 * ```
 */
import { keys } from "../core/keys.ts";
import { Claim, type Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import type { TaskOutcome } from "./context.ts";
import { complete, type WorkerId } from "./queue.ts";

/** How often rebuilt writes are tried before the handler runs again. */
export const AGAIN = 100;

/**
 * Completes `task` with `outcome`; false when a compare failed and the
 * writes could not be rebuilt (or kept losing), or the claim was lost.
 */
export async function completeOutcome(
  store: Store,
  task: Task,
  worker: WorkerId,
  outcome: TaskOutcome,
): Promise<boolean> {
  const { result, again } = outcome;
  if (await complete(store, task, worker, result, outcome.txn)) return true;
  for (let n = 0; again && n < AGAIN; n++) {
    const claim = await store.get(keys.claim(task.id), Claim);
    if (claim?.value.lease !== worker.lease) return false;
    await jitter(n);
    const txn = await again();
    if (!txn) return false;
    if (await complete(store, task, worker, result, txn)) return true;
  }
  return false;
}

/** A random wait of up to 2^n ms, at most 100. */
function jitter(n: number): Promise<void> {
  const ms = Math.random() * Math.min(100, 2 ** n);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
