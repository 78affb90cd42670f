/**
 * `vm.create` (target `any`): places a pending VM. The host comes from the
 * scheduler (`scheduler.policy`, scheduler/place.ts `pickHost()`);
 * the VM's cores and memory are reserved in `alloc/<host>` in one
 * transaction that also sets the VM's host (phase scheduled) and enqueues
 * `vm.start` there. Two placers at once cannot overcommit a host: the
 * transaction compares the reservation document's mod revision, so the
 * loser's completion fails and the worker runs the handler again.
 *
 * Candidates come from the process's placement cache
 * (scheduler/cache.ts) when one runs for the store (see
 * `setPlacementCache`), otherwise from three listings per run.
 *
 * When nothing fits, the VM stays pending with the reason in
 * `status.reason`, and the handler completes its task and enqueues a fresh
 * `vm.create` in the same transaction, due after a back-off that doubles
 * per try from `FIRST_WAIT_MS` up to `scheduler.placementRetryMaxSeconds`:
 * waiting for capacity consumes no attempts and needs nothing from the
 * worker. Its queue entry notes the owner and the VM's need
 * (`CapacityWait`), so a worker tries it at once when a host gains room it
 * fits in (workers/capacity_wake.ts). The chain keeps at most two finished
 * task documents per VM: the first one (whose id the API returned) and the
 * latest.
 *
 * `payload.avoid` (set by `vm.move`) names the host the VM is moving off:
 * it is left out of the candidates. When no other host fits, the VM is
 * placed as usual (back on that host, if it is still live and active and
 * has room), else it waits for capacity with the move in its reason; the
 * waiting chain keeps `avoid`, and `downSince` (when a moved VM's stop
 * began, or an evacuated VM's host died: then `failover` names that host),
 * which goes on to `vm.start`.
 */
import { keys } from "../core/keys.ts";
import type { Vm } from "../core/schemas.ts";
import type { Kv } from "../core/store.ts";
import {
  needOf,
  pickHost,
  PlacementCache,
  type Policy,
  readyCache,
  reserveIn,
} from "../scheduler/mod.ts";
import type { TaskContext, TaskHandler, TaskOutcome } from "./context.ts";
import { enqueue, newTask } from "./queue.ts";
import { readVm, statusTxn } from "./vm_common.ts";

/** First wait of a VM that fits nowhere; doubles per try up to the max. */
export const FIRST_WAIT_MS = 250;
/** `scheduler.placementRetryMaxSeconds` when the config has none. */
const MAX_WAIT_SECONDS = 60;

let configured: PlacementCache | null = null;

/**
 * Makes `vm.create` take candidates from `cache` (null: back to the cache
 * registered for the task's store, if any, else listings). Optional: a
 * cache started with `PlacementCache.start(store)` is found by itself.
 */
export function setPlacementCache(cache: PlacementCache | null): void {
  configured = cache;
}

/**
 * The delay before try `waits + 1` of a VM waiting for capacity: 0.25 s
 * doubling per try up to `maxMs`, jittered down by at most a quarter.
 */
export function capacityWait(
  waits: number,
  maxMs: number,
  random = Math.random,
): number {
  const base = Math.min(maxMs, FIRST_WAIT_MS * 2 ** Math.min(waits, 30));
  return Math.round(base * (0.75 + 0.25 * random()));
}

/** The finished predecessor in a waiting chain, to delete (not the first). */
function staleTask(ctx: TaskContext): string | null {
  const { previous, origin } = ctx.task.payload;
  return typeof previous === "string" && previous !== origin ? previous : null;
}

/** VM stays pending with `reason`; a fresh vm.create runs after a delay. */
function waitForCapacity(
  ctx: TaskContext,
  vm: Kv<Vm>,
  reason: string,
): TaskOutcome {
  const p = ctx.task.payload;
  const waits = typeof p.waits === "number" ? p.waits : 0;
  const max = ctx.config.scheduler?.placementRetryMaxSeconds ??
    MAX_WAIT_SECONDS;
  const delay = capacityWait(waits, max * 1000);
  const next = newTask({
    kind: "vm.create",
    target: "any",
    payload: {
      vm: vm.value.id,
      origin: typeof p.origin === "string" ? p.origin : ctx.task.id,
      previous: ctx.task.id,
      waits: waits + 1,
      ...(typeof p.avoid === "string" ? { avoid: p.avoid } : {}),
      ...(typeof p.downSince === "string" ? { downSince: p.downSince } : {}),
      ...(typeof p.failover === "string" ? { failover: p.failover } : {}),
    },
    owner: ctx.task.owner,
    maxAttempts: ctx.task.maxAttempts,
  });
  next.notBefore = Date.now() + delay;
  // Compare the VM even when the reason is unchanged: a VM deleted or
  // placed meanwhile makes the worker run this handler again.
  const txn = vm.value.status.reason === reason
    ? ctx.guard().ifModRevision(vm.key, vm.modRevision)
    : statusTxn(ctx, vm, { reason });
  enqueue(txn, next, {
    vm: vm.value.id,
    owner: vm.value.owner,
    need: needOf(vm.value),
  });
  const stale = staleTask(ctx);
  if (stale) txn.delete(keys.task(stale));
  return {
    result: { pending: reason, next: next.id, retryInMs: delay },
    txn,
  };
}

export const vmCreate: TaskHandler = async (ctx) => {
  const vm = await readVm(ctx);
  if (!vm) return { result: { skipped: "vm is gone" } };
  if (vm.value.desired === "deleted") {
    return { result: { skipped: "vm is being deleted" } };
  }
  if (vm.value.status.host) {
    return {
      result: { host: vm.value.status.host, skipped: "already placed" },
    };
  }
  const policy: Policy = ctx.config.scheduler?.policy ?? "spread";
  const cache = await readyCache(configured ?? PlacementCache.for(ctx.store));
  const avoid = typeof ctx.task.payload.avoid === "string"
    ? ctx.task.payload.avoid
    : undefined;
  const pick = await pickHost(
    ctx.store,
    cache,
    vm.value.id,
    needOf(vm.value),
    policy,
    avoid,
  );
  if ("reason" in pick) return waitForCapacity(ctx, vm, pick.reason);

  const { host, lease, note } = pick;
  const txn = reserveIn(
    statusTxn(ctx, vm, {
      // A stopped VM is only re-placed (e.g. moved off a draining host).
      phase: vm.value.desired === "running" ? "scheduled" : "stopped",
      host,
      // The incarnation whose alive key this placement compares owns it.
      incarnation: lease,
      reason: undefined,
    }),
    pick,
  );
  let start: string | undefined;
  if (vm.value.desired === "running") {
    // A moved VM's start measures its downtime from the stop's begin, an
    // evacuated VM's from its host's death (`failover`: that host).
    const { downSince: down, failover } = ctx.task.payload;
    const t = newTask({
      kind: "vm.start",
      target: host,
      payload: {
        vm: vm.value.id,
        ...(typeof down === "string" ? { downSince: down } : {}),
        ...(typeof failover === "string" ? { failover } : {}),
      },
      owner: ctx.task.owner,
      maxAttempts: ctx.task.maxAttempts,
    });
    enqueue(txn, t);
    start = t.id;
  }
  const stale = staleTask(ctx);
  if (stale) txn.delete(keys.task(stale));
  return {
    result: { host, ...(start ? { start } : {}), ...(note ? { note } : {}) },
    txn,
  };
};
