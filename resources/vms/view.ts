/**
 * Reading VMs as a caller may see them: its own, every VM for an admin. A
 * VM the caller may not see is not found, also when it exists.
 *
 * @example
 * ```ts
 * const items = await listVms(store, who);
 * const vm = await showVm(store, who, "vm-1"); // NotFoundError if hidden
 * ```
 */
import { NotFoundError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { Vm } from "../../core/schemas.ts";
import type { Kv, Store } from "../../core/store.ts";
import { type Caller, canSee } from "../deps.ts";

/** Reads a VM `who` may see, with its revision; NotFoundError otherwise. */
export async function readVm(
  store: Store,
  who: Caller,
  id: string,
): Promise<Kv<Vm>> {
  const vm = await store.get(keys.vm(id), Vm);
  if (!vm || !canSee(who, vm.value.owner)) throw new NotFoundError("vm", id);
  return vm;
}

/** The VMs `who` may see. */
export async function listVms(store: Store, who: Caller): Promise<Vm[]> {
  const { items } = await store.list(keys.vms, Vm);
  return items.map((kv) => kv.value).filter((v) => canSee(who, v.owner));
}

/** One VM `who` may see; NotFoundError otherwise. */
export async function showVm(
  store: Store,
  who: Caller,
  id: string,
): Promise<Vm> {
  return (await readVm(store, who, id)).value;
}
