/**
 * The owner index: `vmowner/<owner>/<vm>` for every VM document, put in the
 * transaction that creates the VM (create.ts) and deleted in every
 * transaction that deletes the VM document (tasks/vm_delete.ts,
 * tasks/host_failed.ts), so a listing of one owner's VMs reads that owner's
 * keys and their documents, not every VM (view.ts). A cluster that ran a
 * version before the index has VMs without an entry: the maintenance round
 * writes the missing ones once (tasks/vm_owner_backfill.ts), then
 * `vmowner-backfilled`; until that mark exists, listings by owner read the
 * whole `vm/` prefix as before, so an upgrade hides no VM.
 *
 * @example
 * ```ts
 * indexOwner(store.txn().ifAbsent(keys.vm(vm.id)).put(keys.vm(vm.id), vm), vm);
 * if (await ownerIndexReady(store)) { ... read keys.vmsOwnedBy(owner) ... }
 * ```
 */
import { keys } from "../../core/keys.ts";
import { type Vm, VmOwnersBackfilled } from "../../core/schemas.ts";
import type { Store, Txn } from "../../core/store.ts";

/** Adds the put of `vm`'s owner index entry to `txn`; returns `txn`. */
export function indexOwner(txn: Txn, vm: Pick<Vm, "id" | "owner">): Txn {
  return txn.put(keys.vmOwner(vm.owner, vm.id), {});
}

/** Adds the delete of `vm`'s owner index entry to `txn`; returns `txn`. */
export function unindexOwner(txn: Txn, vm: Pick<Vm, "id" | "owner">): Txn {
  return txn.delete(keys.vmOwner(vm.owner, vm.id));
}

/** Stores whose `vmowner-backfilled` was seen (it is never deleted). */
const ready = new WeakSet<Store>();

/** Whether the owner index holds every VM (the backfill's mark exists). */
export async function ownerIndexReady(store: Store): Promise<boolean> {
  if (ready.has(store)) return true;
  const mark = await store.get(keys.vmOwnersBackfilled, VmOwnersBackfilled);
  if (mark) ready.add(store);
  return mark !== null;
}
