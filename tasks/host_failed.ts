/**
 * `host.failed` (target `any`): a host's lease expired, so its worker has
 * fenced itself (or is gone with its VMs). Every VM the failed incarnation
 * ran goes back to pending and gets a `vm.create` task, so the scheduler
 * restarts it on a host with room; its reservation on the dead host is
 * released. VMs being deleted are simply deleted. Exactly one `host.failed`
 * runs per failed incarnation (see `enqueueHostFailed`).
 *
 * When the host is alive again under a new incarnation, VMs that incarnation
 * already runs or is about to start are left alone.
 */
import { keys } from "../core/keys.ts";
import { Alive, type Task, Vm } from "../core/schemas.ts";
import type { Kv, Store } from "../core/store.ts";
import type { TaskContext, TaskHandler } from "./context.ts";
import { enqueue, newTask } from "./queue.ts";
import { releaseAlloc, replace } from "./vm_common.ts";

/**
 * Enqueues `host.failed` for one failed incarnation, at most once across
 * all workers: the task is created together with `failover/<host>/<inc>`.
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
  const r = await enqueue(
    store.txn().ifAbsent(keys.failover(host, incarnation)),
    task,
  ).put(keys.failover(host, incarnation), {
    task: task.id,
    at: now.toISOString(),
  }).commit();
  return r.ok ? task : null;
}

function str(v: unknown, name: string): string {
  if (typeof v !== "string") throw new TypeError(`payload.${name} is missing`);
  return v;
}

/** Moves one VM off the failed host; false when it changed meanwhile. */
async function evacuate(
  ctx: TaskContext,
  vm: Kv<Vm>,
  host: string,
  incarnation: string,
): Promise<"evacuated" | "deleted" | "conflict"> {
  const id = vm.value.id;
  const txn = await releaseAlloc(
    ctx,
    ctx.guard().ifModRevision(vm.key, vm.modRevision),
    host,
    id,
  );
  if (vm.value.desired === "deleted") {
    txn.delete(vm.key);
    return (await txn.commit()).ok ? "deleted" : "conflict";
  }
  replace(
    ctx,
    txn,
    vm,
    `evacuating: host ${host} failed (lease ${incarnation} expired)`,
  );
  return (await txn.commit()).ok ? "evacuated" : "conflict";
}

export const hostFailed: TaskHandler = async (ctx) => {
  const host = str(ctx.task.payload.host, "host");
  const incarnation = str(ctx.task.payload.incarnation, "incarnation");
  const alive = await ctx.store.get(keys.alive(host), Alive);
  if (alive?.value.incarnation === incarnation) {
    return { result: { skipped: "the incarnation is alive" } };
  }
  const evacuated: string[] = [];
  const deleted: string[] = [];
  const left: string[] = [];
  const mine = (vm: Vm) => {
    if (vm.status.host !== host) return false;
    // A live new incarnation keeps what it started or is about to start.
    if (alive) return vm.status.incarnation === incarnation;
    return true;
  };
  for (let pass = 0; pass < 5; pass++) {
    const vms = (await ctx.store.list(keys.vms, Vm)).items.filter((v) =>
      mine(v.value)
    );
    if (vms.length === 0) break;
    await ctx.progress(`evacuating ${vms.length} VM(s) from ${host}`);
    for (const vm of vms) {
      const r = await evacuate(ctx, vm, host, incarnation);
      if (r === "evacuated") evacuated.push(vm.value.id);
      if (r === "deleted") deleted.push(vm.value.id);
    }
  }
  const rest = (await ctx.store.list(keys.vms, Vm)).items.filter((v) =>
    mine(v.value)
  );
  left.push(...rest.map((v) => v.value.id));
  if (left.length) {
    throw new Error(`VMs kept changing during evacuation: ${left.join(", ")}`);
  }
  ctx.log.warn("host failed: VMs evacuated", {
    failed: host,
    evacuated,
    deleted,
  });
  return { result: { host, incarnation, evacuated, deleted } };
};
