/**
 * A new task document and its queue index, written into a caller's
 * transaction: what a resource change (resources/, the task handlers) adds
 * so that the task that carries it out is created together with it. The
 * queue's life cycle (claim, complete, fail, retry) is tasks/queue.ts.
 *
 * @example
 * ```ts
 * const task = newTask({ kind: "vm.start", target: "h1", payload: { vm } });
 * await enqueue(store.txn().put(keys.vm(vm), doc), task).commit();
 * ```
 */
import { z } from "zod";
import { keys, newId } from "./keys.ts";
import type { Requester, Task } from "./schemas.ts";
import type { Txn } from "./store.ts";

/** What a new task is: kind, target (a host or `any`), payload, owner. */
export interface NewTask {
  kind: string;
  target: string;
  payload: Record<string, unknown>;
  owner?: string;
  maxAttempts?: number;
  idempotencyKey?: string;
  now?: Date;
  /** The API caller it is made for (see `requester`). */
  by?: { name: string; actor?: string };
}

/**
 * Who asked, as the task history records it: the caller's name, and the
 * admin acting for them (`X-Act-As`).
 *
 * @example
 * ```ts
 * requester({ name: "bob", admin: false, actor: "alice" }); // { user: "bob", actor: "alice" }
 * ```
 */
export function requester(who: { name: string; actor?: string }): Requester {
  return { user: who.name, ...(who.actor ? { actor: who.actor } : {}) };
}

/**
 * `task` with its `queued` event naming who asked for it (`requester`); for
 * tasks a resource function builds before it knows the caller's part.
 */
export function askedBy(
  task: Task,
  who: { name: string; actor?: string },
): Task {
  const [first, ...rest] = task.history;
  return { ...task, history: [{ ...first, by: requester(who) }, ...rest] };
}

/** Builds a queued task document. */
export function newTask(t: NewTask): Task {
  const at = (t.now ?? new Date()).toISOString();
  return {
    id: newId("t"),
    kind: t.kind,
    target: t.target,
    payload: t.payload,
    ...(t.owner ? { owner: t.owner } : {}),
    state: "queued",
    attempts: 0,
    maxAttempts: t.maxAttempts ?? 5,
    notBefore: 0,
    createdAt: at,
    updatedAt: at,
    ...(t.idempotencyKey ? { idempotencyKey: t.idempotencyKey } : {}),
    history: [{
      at,
      state: "queued",
      ...(t.by ? { by: requester(t.by) } : {}),
    }],
  };
}

/**
 * A queue entry's note that its task is a VM waiting for capacity: which,
 * whose, and what it needs (scheduler/resources.ts `Need`), so a worker can
 * try it before `notBefore` once a host has room (workers/capacity_wake.ts),
 * and the API can count a user's waiting VMs from the queue alone.
 */
export const CapacityWait = z.object({
  vm: z.string(),
  owner: z.string(),
  need: z.object({
    cpus: z.number(),
    memoryMiB: z.number(),
    diskMiB: z.number().optional(),
    bridges: z.array(z.string()).optional(),
  }),
});
export type CapacityWait = z.infer<typeof CapacityWait>;

/** The value of `queue/<target>/<task id>`. */
export const QueueEntry = z.object({
  notBefore: z.number(),
  wait: CapacityWait.optional(),
});
export type QueueEntry = z.infer<typeof QueueEntry>;

/**
 * Adds the task document and its queue index to `txn`, so the task is
 * created in the same transaction as the resource change that needs it;
 * `wait` marks a VM placement waiting for capacity.
 */
export function enqueue(txn: Txn, task: Task, wait?: CapacityWait): Txn {
  return txn.ifAbsent(keys.task(task.id))
    .put(keys.task(task.id), task)
    .put(keys.queue(task.target, task.id), {
      notBefore: task.notBefore,
      ...(wait ? { wait } : {}),
    });
}
