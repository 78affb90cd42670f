/**
 * The bound on a user's VMs waiting for capacity
 * (`scheduler.maxPendingVmsPerUser`): a new VM that fits on no host is
 * refused while its owner already has that many waiting. They are counted
 * from the `any` queue, whose entries of waiting `vm.create` tasks name
 * the VM and its owner (core/task_doc.ts `CapacityWait`), so the count
 * reads what is queued and those VMs, not every VM. The bound is exact
 * under concurrency: the create counts after it read its owner's usage
 * document (resources/quotas/usage.ts) and commits comparing that
 * revision, and every create writes that document, so a create committed
 * meanwhile fails the compare and the count is made again. (A VM placed
 * meanwhile only makes the count one too high for that try.)
 *
 * @example
 * ```ts
 * await checkPending(deps, "alice", reason); // ConflictError at the bound
 * ```
 */
import { SchedulerConfig } from "../../core/config_scheduler.ts";
import { ConflictError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { QueueEntry } from "../../core/task_doc.ts";
import type { ResourceDeps } from "../deps.ts";

/**
 * How many of `owner`'s VMs wait for capacity: their `vm.create` is queued
 * and the VM is still there, not placed and not being deleted (a deleted
 * VM's last try stays queued until its back-off ends).
 */
export async function pendingOf(store: Store, owner: string): Promise<number> {
  const queued = await store.list(keys.queueOf("any"), QueueEntry);
  const ids = new Set(
    queued.items.flatMap((q) =>
      q.value.wait?.owner === owner ? [q.value.wait.vm] : []
    ),
  );
  const vms = await Promise.all(
    [...ids].map((id) => store.get(keys.vm(id), Vm)),
  );
  return vms.filter((v) =>
    v && !v.value.status.host && v.value.desired !== "deleted"
  ).length;
}

/**
 * Throws ConflictError when `owner` already has the most VMs waiting for
 * capacity that the config allows; `reason` says why the new one waits.
 * Call it after reading the owner's usage (createVm does), so that the
 * create's compare of it covers the count.
 */
export async function checkPending(
  { store, config }: ResourceDeps,
  owner: string,
  reason: string,
): Promise<void> {
  const max = config.scheduler?.maxPendingVmsPerUser ??
    SchedulerConfig.shape.maxPendingVmsPerUser.parse(undefined);
  if (max === 0) return;
  const n = await pendingOf(store, owner);
  if (n < max) return;
  throw new ConflictError(
    `Cannot create VM: ${owner} has ${n} VM(s) waiting for capacity, at most ${max} ` +
      `(scheduler.maxPendingVmsPerUser); delete one or wait until they are placed. ` +
      `This one would wait too: ${reason}`,
  );
}
