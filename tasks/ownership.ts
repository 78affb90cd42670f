/**
 * Who may run a VM (DESIGN.md rule 7): one etcd fact, the VM's
 * `status.host` and `status.incarnation` (the lease of that host's worker
 * incarnation). Every writer compares it:
 *
 * - placement sets it in the transaction that compares the chosen host's
 *   `alive/` key (resources/vms/create.ts, tasks/vm_create.ts);
 * - a live incarnation of the same host takes a VM over (after it
 *   re-registered, or adopting a process) only in a transaction that
 *   compares its own `alive/` key and the VM's revision ({@linkcode take});
 * - evacuation takes a VM off a failed incarnation only in a transaction
 *   that compares the VM's revision and that this incarnation's `alive/` key
 *   is gone ({@linkcode ifOwnerDead}).
 *
 * A process of a VM that this host does not own is killed at once
 * (workers/vm_keeper.ts), so whichever of the two writers wins, the VM runs on
 * one host only.
 *
 * @example
 * ```ts
 * if (!ownedBy(vm.value, ctx.host, ctx.worker.lease)) {
 *   await take(ctx.guard(), vm, ctx.host, ctx.worker.lease, { phase: "starting" });
 * }
 * ```
 */
import { keys } from "../core/keys.ts";
import type { Vm, VmStatus } from "../core/schemas.ts";
import type { Kv, Txn } from "../core/store.ts";
import { withStatus } from "./vm_common.ts";

/** True when `vm` is placed on `host` and owned by incarnation `lease`. */
export function ownedBy(vm: Vm, host: string, lease: string): boolean {
  return vm.status.host === host && vm.status.incarnation === lease;
}

/**
 * Adds to `txn` the compare that the VM's owning incarnation is dead: its
 * host's `alive/` key is absent or bound to another lease. A VM placed
 * before owners were recorded (no `status.incarnation`) counts as owned by
 * whatever incarnation is alive: the compare is then that none is.
 */
export function ifOwnerDead(txn: Txn, vm: Vm): Txn {
  const host = vm.status.host;
  if (!host) throw new TypeError(`VM ${vm.id} is not placed on a host`);
  const inc = vm.status.incarnation;
  return inc
    ? txn.ifNotLease(keys.alive(host), inc)
    : txn.ifAbsent(keys.alive(host));
}

/**
 * Takes `vm` over for the live incarnation `lease` of `host` (the VM's
 * host): commits `txn` (the caller's guards and writes, e.g. a task to
 * enqueue) with compares on the VM's revision and that `alive/<host>` is
 * bound to `lease`, writing the status with that owner and `patch`.
 * Returns the new document, or null when a compare failed.
 */
export async function take(
  txn: Txn,
  vm: Kv<Vm>,
  host: string,
  lease: string,
  patch: Partial<VmStatus> = {},
): Promise<Kv<Vm> | null> {
  const value = withStatus(vm.value, { ...patch, host, incarnation: lease });
  const r = await txn.ifModRevision(vm.key, vm.modRevision)
    .ifLease(keys.alive(host), lease)
    .put(vm.key, value)
    .commit();
  return r.ok ? { ...vm, value, modRevision: r.revision } : null;
}
