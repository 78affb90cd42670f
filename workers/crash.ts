/**
 * Records a crash of a VM this host runs (its process died while the VM
 * should run) and applies the restart policy (workers/restart_policy.ts):
 * phase crashed with a `vm.start` on this host due after the backoff, or
 * phase error once it crashed too often. A process that was fenced (or the
 * host restarted) is not the VM's fault: it restarts at once, uncounted. The VM is owned by this host's
 * incarnation afterwards (a restart after re-registering takes it over).
 *
 * @example
 * ```ts
 * const txn = aliveGuard(); // compares this incarnation's alive key
 * await crashTxn(txn, vm, { host, lease, reason, policy }).commit();
 * ```
 */
import type { Kv, Txn } from "../core/store.ts";
import type { Vm } from "../core/schemas.ts";
import { enqueue, newTask } from "../tasks/queue.ts";
import { withStatus } from "../tasks/vm_common.ts";
import { onCrash, type RestartPolicy } from "./restart_policy.ts";

export interface CrashOptions {
  host: string;
  /** This incarnation: the VM's owner from now on. */
  lease: string;
  /** What the driver saw, e.g. "qemu (pid 7) exited: signal 9". */
  reason: string;
  policy: RestartPolicy;
  /**
   * False: the process was fenced or the host restarted, no fault of the
   * VM's: it starts again at once and the crash is not counted.
   */
  counted?: boolean;
  maxAttempts?: number;
  now?: Date;
}

/**
 * Adds to `txn` (which must compare this incarnation's `alive/` key) the
 * crash of `vm`, comparing its revision. Returns the transaction.
 */
export function crashTxn(txn: Txn, vm: Kv<Vm>, o: CrashOptions): Txn {
  const now = o.now ?? new Date();
  const crashes = vm.value.status.crashes;
  const d = o.counted === false
    ? { crashes, delayMs: 0, count: 0 }
    : onCrash(crashes, o.reason, now, o.policy);
  const owner = { host: o.host, incarnation: o.lease, handle: undefined };
  txn.ifModRevision(vm.key, vm.modRevision);
  if ("error" in d) {
    return txn.put(
      vm.key,
      withStatus(vm.value, {
        ...owner,
        phase: "error",
        reason: d.error,
        crashes: d.crashes,
      }),
    );
  }
  const reason = d.count === 0
    ? `${o.reason}; restarting now (not counted as a crash)`
    : `${o.reason}; restarting in ${
      (d.delayMs / 1000).toFixed(1)
    } s (restart ${d.count} of ${o.policy.max} within ${o.policy.windowSeconds} s)`;
  txn.put(
    vm.key,
    withStatus(vm.value, {
      ...owner,
      phase: "crashed",
      reason,
      crashes: d.crashes,
    }),
  );
  const start = newTask({
    kind: "vm.start",
    target: o.host,
    payload: { vm: vm.value.id, reason: `restart after a crash: ${o.reason}` },
    owner: vm.value.owner,
    maxAttempts: o.maxAttempts,
    now,
  });
  start.notBefore = now.getTime() + d.delayMs;
  return enqueue(txn, start);
}
