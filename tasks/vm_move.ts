/**
 * `vm.move` (target: the host the VM runs on, `payload.from`): moves a VM
 * off that host by stopping it there and starting it elsewhere. The
 * handler stops the VM's process gracefully (the guest gets
 * `payload.timeoutSeconds`, default `worker.stopTimeoutSeconds`, to shut
 * down by itself before the hard stop; `payload.force` skips that) and
 * removes its files on this host, then
 * records the move in one claim-guarded transaction (applied with the
 * task's completion): the VM's reservation in `alloc/<from>` is released
 * (comparing its revision), the VM goes back to pending with the reason,
 * and `vm.create` (target `any`, `payload.avoid` = this host) places it
 * again, starting it only when its desired state is running.
 *
 * The result says how the stop went (`how`, `stopMs`) and when it began
 * (`downSince`, wall clock); `vm.create` hands `downSince` to the VM's
 * `vm.start` on the new host, whose result has `downtimeMs`: from the stop's
 * begin to running there (wall clocks of two hosts).
 *
 * Payload: `{ vm, from, reason, drain?, force?, timeoutSeconds? }`. The move is skipped when the VM
 * is gone, being deleted, or no longer on `from` (it moved meanwhile: the
 * goal, off `from`, is reached), and for a drain (`drain: true`) when the
 * host was enabled again before the move ran.
 *
 * @example
 * ```ts
 * enqueue(txn, newTask({
 *   kind: "vm.move",
 *   target: "h1",
 *   payload: { vm: "vm-1", from: "h1", reason: "host h1 is draining" },
 * }));
 * ```
 */
import { keys } from "../core/keys.ts";
import { Host, type Vm } from "../core/schemas.ts";
import type { Kv } from "../core/store.ts";
import {
  PermanentError,
  type StopResult,
  type TaskContext,
  type TaskHandler,
} from "./context.ts";
import { stopOptions } from "./stop_options.ts";
import { readVm, releaseAlloc, replace } from "./vm_common.ts";

/** Why a VM found in `vm` need not (or must not) be moved off `from`. */
export function moveSkip(vm: Vm | null, from: string): string | null {
  if (!vm) return "vm is gone";
  if (vm.desired === "deleted") return "vm is being deleted";
  if (vm.status.host !== from) {
    return `vm is no longer on ${from} (${
      vm.status.host ? `on ${vm.status.host}` : vm.status.phase
    })`;
  }
  return null;
}

function payloadOf(ctx: TaskContext): { from: string; why: string } {
  const { from, reason } = ctx.task.payload;
  if (typeof from !== "string") {
    throw new PermanentError(`Task ${ctx.task.id} has no payload.from`);
  }
  return { from, why: typeof reason === "string" ? reason : "moved" };
}

/**
 * The move as etcd writes, comparing the VM's and the reservation's
 * revisions. `downSince`: when the running VM's stop began, handed on to
 * its start elsewhere, which measures the downtime from it.
 */
async function moveTxn(
  ctx: TaskContext,
  vm: Kv<Vm>,
  from: string,
  why: string,
  downSince?: string,
) {
  const reason = `moving off ${from}: ${why}`;
  const txn = await releaseAlloc(
    ctx,
    ctx.guard().ifModRevision(vm.key, vm.modRevision),
    from,
    vm.value.id,
  );
  const create = replace(ctx, txn, vm, reason, {
    avoid: from,
    ...(downSince ? { downSince } : {}),
  });
  return { txn, create };
}

/**
 * The stop of each recent move, by task id: when the move's transaction
 * loses its compare (three moves off one host race for `alloc/<from>`),
 * the worker runs the handler again, which finds the process already gone;
 * the result must still tell the first stop and when it began. Kept in
 * this process only (a rerun comes from the same worker), at most
 * `MAX_STOPS` entries, the oldest dropped first.
 */
const stops = new Map<string, { stop: StopResult; downSince: string }>();
const MAX_STOPS = 1_000;

function remember(id: string, stop: StopResult, downSince: string) {
  stops.delete(id);
  stops.set(id, { stop, downSince });
  if (stops.size > MAX_STOPS) stops.delete(stops.keys().next().value!);
}

export const vmMove: TaskHandler = async (ctx) => {
  const { from, why } = payloadOf(ctx);
  const vm = await readVm(ctx);
  const skip = moveSkip(vm?.value ?? null, from);
  if (skip || !vm) return { result: { skipped: skip } };
  if (ctx.task.payload.drain === true) {
    const host = await ctx.store.get(keys.host(from), Host);
    if (host?.value.state === "active") {
      return { result: { skipped: `host ${from} was enabled again` } };
    }
  }
  const handle = vm.value.status.handle;
  const earlier = stops.get(ctx.task.id);
  let downSince = new Date().toISOString();
  let stop: StopResult | undefined;
  if (handle) {
    const opts = stopOptions(ctx);
    await ctx.progress(
      `shutting the guest down on ${from} (up to ${opts.timeoutMs / 1000}s)`,
    );
    stop = await ctx.driver.stop(handle, opts);
    ctx.log.info("VM stopped to move", { vm: vm.value.id, ...stop });
    // Run again after a lost compare: the first run stopped it.
    if (stop.how === "gone" && earlier) ({ stop, downSince } = earlier);
    remember(ctx.task.id, stop, downSince);
  }
  await ctx.progress(`removing files on ${from}`);
  await ctx.driver.destroy(vm.value.id);
  // Compares the revision the move was decided on: a VM changed while it
  // stopped makes the handler run again on a fresh read.
  const { txn, create } = await moveTxn(
    ctx,
    vm,
    from,
    why,
    stop ? downSince : undefined,
  );
  return {
    result: {
      vm: vm.value.id,
      from,
      stopped: Boolean(handle),
      ...(stop ? { how: stop.how, stopMs: stop.ms, downSince } : {}),
      create: create.id,
    },
    txn,
  };
};
