/**
 * `host.failed` (target `any`): a host's lease expired, so its worker has
 * fenced itself (or is gone with its VMs). Every VM the failed incarnation
 * owned (`status.incarnation`, tasks/ownership.ts) goes back to pending and
 * gets a `vm.create` task, so the scheduler restarts it on a host with
 * room; its reservation on the dead host is released. VMs being deleted are
 * deleted, their NIC addresses released and their owner's usage lowered
 * (resources/quotas/usage.ts). Exactly one `host.failed` runs per
 * failed incarnation (see `enqueueHostFailed`). Then the tasks still queued
 * for the dead host go to `any` (tasks/retarget.ts).
 *
 * A new incarnation of the host may take the same VMs over at the same
 * time: each VM goes to whichever transaction commits first.
 *
 * The VMs are read through the host's reservations (`alloc/<host>`,
 * scheduler/placed_on.ts), not a listing of every VM in the cluster.
 *
 * A VM document this worker cannot read (written by a newer release, or
 * corrupt) and reserved on the failed host may belong to it, but cannot be evacuated safely
 * without reading it: the result lists it (`unreadable`), and a follow-up
 * `host.failed` for the same incarnation runs later (30 s, doubling up to
 * 10 min, at most {@linkcode RECHECKS} times), which a worker of a newer
 * release may claim, or this one once the document is readable again.
 */
import { idOf, keys } from "../core/keys.ts";
import { leasePool } from "../core/lease_pool.ts";
import { NO_USAGE } from "../core/quota_schemas.ts";
import { releaseNics } from "../resources/networks/nics.ts";
import { unindexOwner } from "../resources/vms/owner_index.ts";
import {
  changeUsage,
  readUsage,
  vmAmounts,
} from "../resources/quotas/usage.ts";
import { Alive, type Task, type Vm } from "../core/schemas.ts";
import type { Kv, Store, Unreadable } from "../core/store.ts";
import type { TaskContext, TaskHandler, TaskOutcome } from "./context.ts";
import { ifOwnerDead } from "./ownership.ts";
import { enqueue, newTask } from "./queue.ts";
import { placedOn } from "../scheduler/placed_on.ts";
import { retargetTasks } from "./retarget.ts";
import { releaseAlloc, replace } from "./vm_common.ts";

/**
 * How long `failover/<host>/<inc>` is kept (24 h): every worker's failure
 * watcher enqueues at about the same time, so one day dedupes them all.
 * A worker started later that finds the host still dead enqueues once
 * more, a reconciler with nothing left to move.
 */
export const FAILOVER_TTL_SECONDS = 24 * 3600;

/**
 * Enqueues `host.failed` for one failed incarnation, at most once across
 * all workers: the task is created together with `failover/<host>/<inc>`
 * (bound to a lease: it expires after {@linkcode FAILOVER_TTL_SECONDS}).
 * Returns the task, or null when another worker already enqueued it.
 */
export async function enqueueHostFailed(
  store: Store,
  host: string,
  incarnation: string,
  now = new Date(),
): Promise<Task | null> {
  const task = newTask({
    kind: "host.failed",
    target: "any",
    payload: { host, incarnation, detectedAt: now.toISOString() },
    maxAttempts: 10,
    now,
  });
  const lease = await leasePool(store, FAILOVER_TTL_SECONDS).take();
  const r = await enqueue(
    store.txn().ifAbsent(keys.failover(host, incarnation)),
    task,
  ).put(keys.failover(host, incarnation), {
    task: task.id,
    at: now.toISOString(),
  }, { lease }).commit();
  return r.ok ? task : null;
}

/** Follow-ups of one failover while VM documents cannot be read. */
export const RECHECKS = 20;
/** Unreadable documents named in a result (the count is always given). */
const LISTED = 20;

function str(v: unknown, name: string): string {
  if (typeof v !== "string") throw new TypeError(`payload.${name} is missing`);
  return v;
}

/**
 * Moves one VM off the failed incarnation (to pending, or deleted with its
 * NIC addresses released when it was being deleted), comparing the VM's
 * revision and that its owner's `alive/` key is gone (rule 7). "conflict":
 * it changed meanwhile or its owner is alive (e.g. a new incarnation of the
 * host took it over).
 */
export async function evacuate(
  ctx: TaskContext,
  vm: Kv<Vm>,
  host: string,
  incarnation: string,
): Promise<"evacuated" | "deleted" | "conflict"> {
  const id = vm.value.id;
  const txn = ifOwnerDead(
    await releaseAlloc(
      ctx,
      ctx.guard().ifModRevision(vm.key, vm.modRevision),
      host,
      id,
    ),
    vm.value,
  );
  if (vm.value.desired === "deleted") {
    unindexOwner(txn.delete(vm.key).delete(keys.userData(id)), vm.value);
    await releaseNics(ctx.store, txn, id, vm.value.nics);
    const usage = await readUsage(ctx.store, vm.value.owner);
    changeUsage(txn, usage, NO_USAGE, vmAmounts(vm.value.spec));
    return (await txn.commit()).ok ? "deleted" : "conflict";
  }
  // Its start measures the failover from the host's death (api/task_flow.ts).
  const died = ctx.task.payload.detectedAt;
  replace(
    ctx,
    txn,
    vm,
    `evacuating: host ${host} failed (lease ${incarnation} expired)`,
    typeof died === "string" ? { failover: host, downSince: died } : {},
  );
  return (await txn.commit()).ok ? "evacuated" : "conflict";
}

/**
 * VMs the failed incarnation owns. One placed before owners were recorded
 * counts while no incarnation of the host is alive.
 */
function ownedBy(
  vms: Kv<Vm>[],
  host: string,
  incarnation: string,
  alive: boolean,
): Kv<Vm>[] {
  return vms.filter(({ value: { status: s } }) =>
    s.host === host &&
    (s.incarnation === incarnation || (s.incarnation === undefined && !alive))
  );
}

export const hostFailed: TaskHandler = async (ctx) => {
  const host = str(ctx.task.payload.host, "host");
  const incarnation = str(ctx.task.payload.incarnation, "incarnation");
  const evacuated: string[] = [];
  const deleted: string[] = [];
  let unreadable: Unreadable[] = [];
  const owned = async () => {
    // Read per pass: a new incarnation may register at any moment. Only
    // the host's VMs (scheduler/placed_on.ts): placement reserves a VM on
    // the host in the transaction that compares its alive/ key, which is
    // gone now, so every VM of the failed incarnation is reserved there.
    const [alive, vms] = await Promise.all([
      ctx.store.get(keys.alive(host), Alive),
      placedOn(ctx.store, host),
    ]);
    if (alive?.value.incarnation === incarnation) return null;
    unreadable = vms.unreadable;
    return ownedBy(vms.items, host, incarnation, alive !== null);
  };
  for (let pass = 0; pass < 5; pass++) {
    const vms = await owned();
    if (vms === null) {
      return { result: { skipped: "the incarnation is alive" } };
    }
    if (vms.length === 0) break;
    await ctx.progress(`evacuating ${vms.length} VM(s) from ${host}`);
    for (const vm of vms) {
      const r = await evacuate(ctx, vm, host, incarnation);
      if (r === "evacuated") evacuated.push(vm.value.id);
      if (r === "deleted") deleted.push(vm.value.id);
    }
  }
  const left = (await owned())?.map((v) => v.value.id) ?? [];
  if (left.length) {
    throw new Error(`VMs kept changing during evacuation: ${left.join(", ")}`);
  }
  const retargeted = await retargetTasks(ctx, host);
  // After an ordered shutdown (workers/shutdown.ts) nothing is left: no news.
  const any = evacuated.length + deleted.length + retargeted.length > 0;
  ctx.log[any ? "warn" : "info"]("host failed: VMs evacuated", {
    failed: host,
    evacuated,
    deleted,
    retargeted,
  });
  const result = { host, incarnation, evacuated, deleted, retargeted };
  if (!unreadable.length) return { result };
  return recheck(ctx, result, unreadable);
};

/**
 * The outcome when VM documents could not be read: they are listed, and
 * a follow-up runs later (unless {@linkcode RECHECKS} ran already).
 */
function recheck(
  ctx: TaskContext,
  result: Record<string, unknown>,
  unreadable: Unreadable[],
): TaskOutcome {
  const p = ctx.task.payload;
  const done = typeof p.recheck === "number" ? p.recheck : 0;
  const listed = unreadable.slice(0, LISTED).map((u) => ({
    vm: idOf(u.key),
    reason: u.reason,
  }));
  const out = {
    ...result,
    unreadable: listed,
    unreadableCount: unreadable.length,
  };
  ctx.log.warn("host failed: VM documents that cannot be read stay put", {
    failed: result.host,
    unreadable: listed,
    recheck: done < RECHECKS ? done + 1 : null,
  });
  if (done >= RECHECKS) return { result: out };
  const delayMs = Math.min(30_000 * 2 ** done, 600_000);
  const next = newTask({
    kind: "host.failed",
    target: "any",
    payload: { ...p, recheck: done + 1 },
    maxAttempts: ctx.task.maxAttempts,
  });
  next.notBefore = Date.now() + delayMs;
  return {
    result: { ...out, recheck: next.id, recheckInMs: delayMs },
    txn: enqueue(ctx.guard(), next),
  };
}
