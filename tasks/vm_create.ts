/**
 * `vm.create` (target `any`): places a pending VM on a host (first fit) and
 * reserves its cores and memory in `alloc/<host>` in one transaction that
 * also sets the VM's host and enqueues `vm.start` there. Two workers placing
 * at once cannot overcommit a host: the transaction compares the
 * reservation document's mod revision.
 */
import { keys } from "../core/keys.ts";
import { Alive, Alloc, Host } from "../core/schemas.ts";
import { firstFit } from "../workers/placement.ts";
import type { TaskHandler } from "./context.ts";
import { enqueue, newTask } from "./queue.ts";
import { readVm, statusTxn, writeStatus } from "./vm_common.ts";

/** Raised when no host has room; the task retries with backoff. */
export class NoCapacityError extends Error {
  override name = "NoCapacityError";
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
  const [hosts, alive, allocs] = await Promise.all([
    ctx.store.list(keys.hosts, Host),
    ctx.store.list(keys.alives, Alive),
    ctx.store.list(keys.allocs, Alloc),
  ]);
  const aliveSet = new Set(
    alive.items.map((a) => a.key.slice("alive/".length)),
  );
  const allocOf = new Map(
    allocs.items.map((a) => [a.key.slice("alloc/".length), a]),
  );
  const need = { cpus: vm.value.spec.cpus, memoryMiB: vm.value.spec.memory };
  const pick = firstFit(
    hosts.items.map((h) => ({
      host: h.value,
      alive: aliveSet.has(h.value.name),
      alloc: allocOf.get(h.value.name)?.value ?? null,
    })),
    need,
  );
  if ("reason" in pick) {
    if (vm.value.status.reason !== pick.reason) {
      await writeStatus(ctx, vm, { reason: pick.reason });
    }
    throw new NoCapacityError(pick.reason);
  }
  const host = pick.host;
  const alloc = allocOf.get(host);
  const start = newTask({
    kind: "vm.start",
    target: host,
    payload: { vm: vm.value.id },
    owner: ctx.task.owner,
    maxAttempts: ctx.task.maxAttempts,
  });
  const txn = statusTxn(ctx, vm, {
    phase: "scheduled",
    host,
    reason: undefined,
  })
    .ifModRevision(keys.alloc(host), alloc?.modRevision ?? "0")
    .put(keys.alloc(host), {
      vms: { ...alloc?.value.vms, [vm.value.id]: need },
    });
  if (vm.value.desired === "running") enqueue(txn, start);
  return { result: { host }, txn };
};
