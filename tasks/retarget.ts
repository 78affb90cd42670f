/**
 * Tasks addressed to a dead host (`queue/<host>/...`: a stop, delete, start
 * or NIC change) would wait forever: nothing else claims them. After the
 * host's VMs were evacuated, `host.failed` moves each of them to `any`,
 * where any worker runs it: every VM handler reads the VM again and
 * forwards the work to the VM's new host, or finishes it on an unplaced VM
 * (a delete deletes, a stop records stopped). One transaction per task,
 * comparing the task's revision, that it has no claim, and that the host
 * still has no live incarnation (a new one runs its own queue).
 *
 * @example
 * ```ts
 * const moved = await retargetTasks(ctx, "h1"); // task ids now on `any`
 * ```
 */
import { idOf, keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import type { TaskContext } from "./context.ts";
import { HISTORY_LIMIT, transition } from "./state.ts";

/** The task moved to target `any`, runnable again, with the reason. */
export function retargeted(task: Task, why: string, now = new Date()): Task {
  const at = now.toISOString();
  const moved = task.state === "running"
    ? transition(task, "queued", { message: why, now })
    : {
      ...task,
      updatedAt: at,
      history: [...task.history, { at, state: task.state, message: why }]
        .slice(-HISTORY_LIMIT),
    };
  return { ...moved, target: "any", notBefore: 0, progress: undefined };
}

/** Moves the unfinished tasks of dead `host`'s queue to `any`; their ids. */
export async function retargetTasks(
  ctx: TaskContext,
  host: string,
): Promise<string[]> {
  const why = `re-targeted to any: host ${host} failed`;
  const moved: string[] = [];
  for (const key of await ctx.store.keys(keys.queueOf(host))) {
    const id = idOf(key);
    const task = await ctx.store.get(keys.task(id), Task);
    const txn = ctx.guard().ifAbsent(keys.alive(host))
      .ifAbsent(keys.claim(id))
      .delete(keys.queue(host, id));
    const open = task?.value.state === "queued" ||
      task?.value.state === "running";
    if (task && open) {
      const next = retargeted(task.value, why);
      txn.ifModRevision(task.key, task.modRevision)
        .put(task.key, next)
        .put(keys.queue("any", id), { notBefore: 0 });
    } else txn.ifModRevision(keys.task(id), task?.modRevision ?? "0");
    if ((await txn.commit()).ok && open) moved.push(id);
  }
  return moved;
}
