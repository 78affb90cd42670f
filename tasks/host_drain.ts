/**
 * `host.drain` (target `any`; payload `{ host, reason? }`): moves every VM
 * off a draining host by enqueuing one `vm.move` per VM placed there
 * (target: that host, which stops the VM before `vm.create` starts it
 * elsewhere). VMs that already have an unfinished `vm.move` are left to
 * it, so running the drain twice enqueues nothing twice.
 *
 * One task enqueues at most `DRAIN_BATCH` moves (etcd takes at most 128
 * operations per transaction); when more VMs are left it enqueues the next
 * `host.drain` with them. The moves are written with the task's completion,
 * which compares the host document and writes it again unchanged (a new
 * mod revision): a host enabled meanwhile, or another drain of the same
 * host that committed first, makes the handler run again, so concurrent
 * drains never enqueue a move twice.
 *
 * The API's `POST /v1/hosts/{name}/drain` enqueues it; the rebalancer
 * (tasks/rebalance_round.ts) enqueues it again while a draining host still
 * has VMs without a move.
 *
 * Which VMs to move is the scheduler's drain plan (scheduler/drain.ts)
 * over the host's VMs, read through its reservations
 * (scheduler/placed_on.ts).
 *
 * @example
 * ```ts
 * const t = drainMove("h1", vm, "host h1 is draining", 5);
 * enqueue(txn, t);
 * ```
 */
import { keys } from "../core/keys.ts";
import { Host, type Task, type Vm } from "../core/schemas.ts";
import { drainPlan } from "../scheduler/drain.ts";
import { placedOn } from "../scheduler/placed_on.ts";
import { PermanentError, type TaskHandler } from "./context.ts";
import { enqueue, newTask, unfinished } from "./queue.ts";

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

/**
 * Moves one drain task enqueues: its completion then takes 5 + 2 x 50
 * operations, under etcd's 128 (`--max-txn-ops`) and fixed, whatever the
 * number of VMs on the host.
 */
export const DRAIN_BATCH = 50;

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
  // Moves first, then VMs: a move that finishes between the two reads
  // wrote its VM with its completion, so the VM is seen off the host then,
  // not on it without a move.
  const tasks = await unfinished(ctx.store, host);
  const vms = await placedOn(ctx.store, host);
  const plan = drainPlan(host, vms.items.map((v) => v.value), tasks);
  const batch = plan.move.slice(0, DRAIN_BATCH);
  // Rewriting the host document serializes the drains of one host.
  const txn = ctx.guard().ifModRevision(doc.key, doc.modRevision)
    .put(doc.key, doc.value);
  const moves = batch.map((vm) => {
    const t = drainMove(host, vm, reason, ctx.task.maxAttempts);
    enqueue(txn, t);
    return { vm: vm.id, task: t.id };
  });
  const left = plan.move.length - batch.length;
  let next: string | undefined;
  if (left > 0) {
    const t = newTask({
      kind: "host.drain",
      target: "any",
      payload: ctx.task.payload,
      owner: ctx.task.owner,
      maxAttempts: ctx.task.maxAttempts,
    });
    enqueue(txn, t);
    next = t.id;
  }
  if (moves.length) {
    await ctx.progress(
      `moving ${moves.length} VM(s) off ${host}${
        left ? `; ${left} more in the next drain task` : ""
      }`,
    );
  }
  ctx.log.info("host drain: moves enqueued", {
    drained: host,
    moves: moves.length,
    moving: plan.moving.length,
    left,
    ...(next ? { next } : {}),
  });
  return {
    result: {
      host,
      moves,
      moving: plan.moving.length,
      ...(next ? { left, next } : {}),
    },
    txn,
  };
};
