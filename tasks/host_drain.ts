/**
 * `host.drain` (target `any`; payload `{ host, reason? }`): moves every VM
 * off a draining host by enqueuing one `vm.move` per VM placed there
 * (target: that host, which stops the VM before `vm.create` starts it
 * elsewhere). VMs that already have an unfinished `vm.move` are left to
 * it, so running the drain twice enqueues nothing twice. The moves are
 * written with the task's completion, comparing the host document: a host
 * enabled meanwhile makes the handler run again and skip.
 *
 * The API's `POST /v1/hosts/{name}/drain` enqueues it; the rebalancer
 * (workers/maintenance.ts) enqueues it again while a draining host still
 * has VMs without a move.
 *
 * @example
 * ```ts
 * const plan = drainPlan("h1", vms, await unfinished(store, "h1"));
 * plan.move; // VMs to enqueue vm.move for
 * ```
 */
import { keys } from "../core/keys.ts";
import { Host, type Task, Vm } from "../core/schemas.ts";
import { PermanentError, type TaskHandler } from "./context.ts";
import { enqueue, newTask, unfinished } from "./queue.ts";

/** What a drain of `host` does: which VMs to move, which are moving. */
export interface DrainPlan {
  /** VMs on the host without an unfinished `vm.move`. */
  move: Vm[];
  /** Ids of VMs on the host whose `vm.move` is queued or running. */
  moving: string[];
}

/**
 * Pure: the VMs placed on `host` (not being deleted) split by whether an
 * unfinished `vm.move` for them exists among `tasks`.
 */
export function drainPlan(host: string, vms: Vm[], tasks: Task[]): DrainPlan {
  const moving = new Set(
    tasks.filter((t) =>
      t.kind === "vm.move" && t.payload.from === host &&
      (t.state === "queued" || t.state === "running")
    ).map((t) => t.payload.vm),
  );
  const on = vms.filter((v) =>
    v.status.host === host && v.desired !== "deleted"
  ).sort((a, b) => a.id.localeCompare(b.id));
  return {
    move: on.filter((v) => !moving.has(v.id)),
    moving: on.filter((v) => moving.has(v.id)).map((v) => v.id),
  };
}

/** Builds the `vm.move` task that moves `vm` off the draining `host`. */
export function drainMove(
  host: string,
  vm: Vm,
  reason: string,
  maxAttempts?: number,
): Task {
  return newTask({
    kind: "vm.move",
    target: host,
    payload: { vm: vm.id, from: host, reason, drain: true },
    owner: vm.owner,
    maxAttempts,
  });
}

export const hostDrain: TaskHandler = async (ctx) => {
  const host = ctx.task.payload.host;
  if (typeof host !== "string") {
    throw new PermanentError(`Task ${ctx.task.id} has no payload.host`);
  }
  const reason = typeof ctx.task.payload.reason === "string"
    ? ctx.task.payload.reason
    : `host ${host} is draining`;
  const doc = await ctx.store.get(keys.host(host), Host);
  if (!doc) return { result: { skipped: `host ${host} is not registered` } };
  if (doc.value.state !== "draining") {
    return { result: { skipped: `host ${host} is ${doc.value.state}` } };
  }
  const [vms, tasks] = await Promise.all([
    ctx.store.list(keys.vms, Vm),
    unfinished(ctx.store, host),
  ]);
  const plan = drainPlan(host, vms.items.map((v) => v.value), tasks);
  const txn = ctx.guard().ifModRevision(doc.key, doc.modRevision);
  const moves = plan.move.map((vm) => {
    const t = drainMove(host, vm, reason, ctx.task.maxAttempts);
    enqueue(txn, t);
    return { vm: vm.id, task: t.id };
  });
  if (moves.length) {
    await ctx.progress(`moving ${moves.length} VM(s) off ${host}`);
  }
  ctx.log.info("host drain: moves enqueued", {
    drained: host,
    moves: moves.length,
    moving: plan.moving.length,
  });
  return { result: { host, moves, moving: plan.moving }, txn };
};
