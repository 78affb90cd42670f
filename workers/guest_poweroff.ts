/**
 * A guest that powered itself off (`poweroff` inside the VM, its own ACPI
 * shutdown) is a stop by its owner, as on EC2 or OpenStack: the VM becomes
 * desired `stopped` with the reason, and a forced `vm.stop` on this host
 * ends the qemu process that `-no-shutdown` keeps in state "shutdown". The
 * crash policy is not involved: nothing is restarted.
 *
 * @example
 * ```ts
 * const txn = aliveGuard(); // compares this incarnation's alive key
 * await poweredOffTxn(txn, vm, { host: "h1" }).commit();
 * ```
 */
import type { Vm } from "../core/schemas.ts";
import type { Kv, Txn } from "../core/store.ts";
import { enqueue, newTask } from "../tasks/queue.ts";
import { withStatus } from "../tasks/vm_common.ts";

/** The reason a VM stopped by its guest shows (`ucloud vm show`). */
export const POWERED_OFF = "the guest powered itself off";

export interface PoweredOffOptions {
  /** This host: the target of the `vm.stop`. */
  host: string;
  maxAttempts?: number;
  now?: Date;
}

/**
 * Adds to `txn` (which must compare this incarnation's `alive/` key) the
 * guest's power-off of `vm`, comparing its revision. Returns the
 * transaction.
 */
export function poweredOffTxn(
  txn: Txn,
  vm: Kv<Vm>,
  o: PoweredOffOptions,
): Txn {
  const now = o.now ?? new Date();
  const reason = `${POWERED_OFF} at ${now.toISOString()}`;
  txn.ifModRevision(vm.key, vm.modRevision).put(vm.key, {
    ...withStatus(vm.value, { phase: "stopping", reason }),
    desired: "stopped",
  });
  return enqueue(
    txn,
    newTask({
      kind: "vm.stop",
      target: o.host,
      payload: { vm: vm.value.id, force: true, reason },
      owner: vm.value.owner,
      maxAttempts: o.maxAttempts,
      now,
    }),
  );
}
