/**
 * The life cycle of an existing VM: start, stop, reboot and delete. Each
 * writes the VM's new desired state and phase together with the task that
 * carries it out (on the VM's host, or `any` for one without a host), in
 * one transaction comparing the revision it decided on (change.ts).
 *
 * @example
 * ```ts
 * const r = await stopVm({ store, config }, who, "vm-1", { timeoutSeconds: 30 });
 * r.done; // true when it was stopped already (r.task is null then)
 * ```
 */
import { ConflictError } from "../../core/errors.ts";
import { askedBy, enqueue } from "../../core/task_doc.ts";
import type { Caller, ResourceDeps } from "../deps.ts";
import { ATTEMPTS, change, moved, type VmChange, vmTask } from "./change.ts";
import { readVm } from "./view.ts";

/** How to stop or reboot: both optional. */
export interface PowerOptions {
  /** The hard stop (or reset) at once, without asking the guest. */
  force?: boolean;
  /** How long the guest gets before the hard stop (the host's default). */
  timeoutSeconds?: number;
}

/** The task payload fields of a power request (only those given). */
export function powerPayload(input: PowerOptions): Record<string, unknown> {
  return {
    ...(input.force === undefined ? {} : { force: input.force }),
    ...(input.timeoutSeconds === undefined
      ? {}
      : { timeoutSeconds: input.timeoutSeconds }),
  };
}

/**
 * Starts VM `id`: `vm.start` on its host, or `vm.create` (placement) when
 * it has none; a new restart window (its crash record is dropped). Done
 * with no task when it runs already; ConflictError while it is deleted.
 */
export function startVm(
  { store, config }: ResourceDeps,
  who: Caller,
  id: string,
): Promise<VmChange> {
  return change(store, who, id, (vm, now) => {
    if (vm.desired === "deleted") {
      throw new ConflictError(
        `Cannot start VM ${vm.id}: it is being deleted`,
      );
    }
    if (vm.desired === "running" && vm.status.phase === "running") {
      return { change: false, done: true };
    }
    // A start by hand begins a new restart window (phase error ends).
    const { crashes: _, ...status } = vm.status;
    vm = { ...vm, status };
    const host = vm.status.host;
    if (!host) {
      return {
        change: true,
        vm: moved(vm, "running", "pending", now),
        task: vmTask(config, "vm.create", "any", vm, now),
      };
    }
    return {
      change: true,
      vm: moved(vm, "running", "starting", now),
      task: vmTask(config, "vm.start", host, vm, now),
    };
  });
}

/**
 * Stops VM `id`: `vm.stop` on its host with the `power` options. Done
 * with no task when it is stopped already; ConflictError while it is
 * deleted or before it has a host.
 */
export function stopVm(
  { store, config }: ResourceDeps,
  who: Caller,
  id: string,
  power: PowerOptions = {},
): Promise<VmChange> {
  const more = powerPayload(power);
  return change(store, who, id, (vm, now) => {
    if (vm.desired === "deleted") {
      throw new ConflictError(
        `Cannot stop VM ${vm.id}: it is being deleted`,
      );
    }
    if (vm.desired === "stopped" && vm.status.phase === "stopped") {
      return { change: false, done: true };
    }
    const host = vm.status.host;
    if (!host) {
      throw new ConflictError(
        `Cannot stop VM ${vm.id}: it has no host yet (phase ${vm.status.phase})`,
      );
    }
    return {
      change: true,
      vm: moved(vm, "stopped", "stopping", now),
      task: vmTask(config, "vm.stop", host, vm, now, more),
    };
  });
}

/**
 * Reboots running VM `id`: only a `vm.reboot` task on its host is written
 * (the VM stays running), comparing the revision seen running.
 * ConflictError unless it is running.
 */
export async function rebootVm(
  { store, config }: ResourceDeps,
  who: Caller,
  id: string,
  power: PowerOptions = {},
): Promise<VmChange> {
  const more = powerPayload(power);
  for (let i = 0; i < ATTEMPTS; i++) {
    const cur = await readVm(store, who, id);
    const vm = cur.value;
    const host = vm.status.host;
    if (vm.desired !== "running" || vm.status.phase !== "running" || !host) {
      throw new ConflictError(
        `Cannot reboot VM ${id}: it is ${vm.status.phase}, not running`,
      );
    }
    const t = askedBy(
      vmTask(config, "vm.reboot", host, vm, new Date(), more),
      who,
    );
    const txn = store.txn().ifModRevision(cur.key, cur.modRevision);
    if ((await enqueue(txn, t).commit()).ok) {
      return { vm, task: t, done: false };
    }
  }
  throw new ConflictError(
    `Cannot reboot VM ${id}: it changed ${ATTEMPTS} times while trying; try again`,
  );
}

/**
 * Deletes VM `id`: phase `deleting` and `vm.delete` on its host (or
 * `any`). A VM being deleted already gets no second task (not done: the
 * first still works on it).
 */
export function deleteVm(
  { store, config }: ResourceDeps,
  who: Caller,
  id: string,
): Promise<VmChange> {
  return change(store, who, id, (vm, now) => {
    if (vm.desired === "deleted") return { change: false, done: false };
    return {
      change: true,
      vm: moved(vm, "deleted", "deleting", now),
      task: vmTask(config, "vm.delete", vm.status.host ?? "any", vm, now),
    };
  });
}
