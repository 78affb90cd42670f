/**
 * Attaching a network to a VM and detaching a NIC from it. A NIC, its
 * addresses and the network's VM list change in the transaction that
 * writes the VM (resources/networks/nics.ts), comparing the VM's revision;
 * when the VM's host may have its process, a `vm.nics` task there plugs
 * or unplugs it (a detached NIC is only marked `detaching` until then).
 *
 * @example
 * ```ts
 * const r = await attachNic({ store, config }, who, "vm-1", "net-1");
 * await detachNic({ store, config }, who, "vm-1", r.vm.nics.at(-1)!.slot);
 * ```
 */
import { ConflictError, NotFoundError } from "../../core/errors.ts";
import type { Task, Vm } from "../../core/schemas.ts";
import type { Txn } from "../../core/store.ts";
import { askedBy, enqueue } from "../../core/task_doc.ts";
import type { Caller, ResourceDeps } from "../deps.ts";
import { checkHostBridges, planNics, releaseNics } from "../networks/nics.ts";
import { ATTEMPTS, ON_HOST, type VmChange, vmTask } from "./change.ts";
import { readVm } from "./view.ts";

/**
 * Adds a NIC in `network` to VM `id`. Throws InvalidError (field
 * `network`) for a network `who` may not use, ConflictError while the VM
 * is deleted, when it has a NIC there already, when its host lacks the
 * network's public bridge, or when slots or addresses run out. The task is
 * null (and the change done) when the VM's host has no process of it.
 */
export async function attachNic(
  { store, config }: ResourceDeps,
  who: Caller,
  id: string,
  network: string,
): Promise<VmChange> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const cur = await readVm(store, who, id);
    const vm = cur.value;
    if (vm.desired === "deleted") {
      throw new ConflictError(
        `Cannot attach to VM ${id}: it is being deleted`,
      );
    }
    if (vm.nics.some((n) => n.network === network)) {
      throw new ConflictError(
        `Cannot attach network ${network} to VM ${id}: it has a NIC in it already`,
      );
    }
    const plan = await planNics(
      store,
      who,
      id,
      [network],
      vm.nics,
      () => "network",
    );
    const hostHas = vm.status.host
      ? await checkHostBridges(store, vm.status.host, id, plan.added)
      : (txn: Txn) => txn;
    const now = new Date();
    const next: Vm = { ...vm, nics: plan.nics };
    const txn = plan.apply(hostHas(
      store.txn().ifModRevision(cur.key, cur.modRevision).put(cur.key, next),
    ));
    const t = vm.status.host && ON_HOST.has(vm.status.phase)
      ? askedBy(vmTask(config, "vm.nics", vm.status.host, vm, now), who)
      : null;
    if (t) enqueue(txn, t);
    if ((await txn.commit()).ok) return { vm: next, task: t, done: !t };
  }
  throw new ConflictError(
    `Cannot attach to VM ${id}: it changed ${ATTEMPTS} times while trying; try again`,
  );
}

/**
 * Detaches the NIC in `slot` of VM `id`. On a VM its host may run, the
 * NIC becomes `detaching` and `vm.nics` there unplugs it, then drops it
 * and frees its addresses; otherwise it is dropped and freed at once
 * (done). A NIC detaching already is left to its task. NotFoundError for
 * a slot without a NIC.
 */
export async function detachNic(
  { store, config }: ResourceDeps,
  who: Caller,
  id: string,
  slot: number,
): Promise<VmChange> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const cur = await readVm(store, who, id);
    const vm = cur.value;
    const nic = vm.nics.find((n) => n.slot === slot);
    if (!nic) throw new NotFoundError("nic", `${id}/${slot}`);
    if (nic.state === "detaching") return { vm, task: null, done: false };
    const now = new Date();
    const txn = store.txn().ifModRevision(cur.key, cur.modRevision);
    let next: Vm;
    let t: Task | null = null;
    if (vm.status.host && ON_HOST.has(vm.status.phase)) {
      // The host unplugs it, then drops it and frees its addresses.
      next = {
        ...vm,
        nics: vm.nics.map((n) =>
          n.slot === slot ? { ...n, state: "detaching" as const } : n
        ),
      };
      t = askedBy(vmTask(config, "vm.nics", vm.status.host, vm, now), who);
      enqueue(txn, t);
    } else {
      const kept = vm.nics.filter((n) => n.slot !== slot);
      next = { ...vm, nics: kept };
      await releaseNics(store, txn, id, [nic], kept);
    }
    txn.put(cur.key, next);
    if ((await txn.commit()).ok) return { vm: next, task: t, done: !t };
  }
  throw new ConflictError(
    `Cannot detach from VM ${id}: it changed ${ATTEMPTS} times while trying; try again`,
  );
}
