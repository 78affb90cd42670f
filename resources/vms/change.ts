/**
 * What the changes of an existing VM share (lifecycle.ts, nics.ts): the
 * result they return, the task they write, the VM moved to a phase, and
 * the read-decide-write loop that writes a change in one transaction
 * comparing the revision it decided on (DESIGN.md rule 1), retrying a
 * lost compare a few times.
 *
 * @example
 * ```ts
 * const r = await change(store, who, id, (vm, now) => ({
 *   change: true,
 *   vm: moved(vm, "stopped", "stopping", now),
 *   task: vmTask(config, "vm.stop", vm.status.host!, vm, now),
 * }));
 * ```
 */
import { ConflictError } from "../../core/errors.ts";
import type { Task, Vm, VmStatus } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { askedBy, enqueue, newTask } from "../../core/task_doc.ts";
import type { Caller, ResourceDeps } from "../deps.ts";
import { readVm } from "./view.ts";

/** How often a read-modify-write is retried after a lost compare. */
export const ATTEMPTS = 5;

/** Phases in which the VM's host may have its process and ports. */
export const ON_HOST: ReadonlySet<string> = new Set([
  "scheduled",
  "starting",
  "running",
  "stopping",
]);

/** What a change of a VM did. */
export interface VmChange {
  /** The VM as written (or as read, when nothing was written). */
  vm: Vm;
  /** The task that carries the change out; null when none was written. */
  task: Task | null;
  /**
   * True when the VM is in the asked state now and nothing is left to a
   * worker; false while a task (this one or an earlier one) works on it.
   */
  done: boolean;
}

/** What a decision on a VM is: nothing to do, or a new VM plus its task. */
export type Plan =
  | { change: false; done: boolean }
  | { change: true; vm: Vm; task: Task };

/** A task of `kind` on `target` for VM `vm`, owned by the VM's owner. */
export function vmTask(
  config: ResourceDeps["config"],
  kind: string,
  target: string,
  vm: Vm,
  now: Date,
  more: Record<string, unknown> = {},
): Task {
  return newTask({
    kind,
    target,
    payload: { vm: vm.id, ...more },
    owner: vm.owner,
    maxAttempts: config.tasks.maxAttempts,
    now,
  });
}

/** The VM with `desired`, `phase` and without a stale failure reason. */
export function moved(
  vm: Vm,
  desired: Vm["desired"],
  phase: VmStatus["phase"],
  now: Date,
): Vm {
  const { reason: _, ...status } = vm.status;
  return {
    ...vm,
    desired,
    status: { ...status, phase, updatedAt: now.toISOString() },
  };
}

/**
 * Reads VM `id` as `who` sees it, lets `plan` decide (it may throw the
 * core/errors.ts errors), and writes the change in a transaction comparing
 * the read revision; retries a lost compare, then throws ConflictError.
 */
export async function change(
  store: Store,
  who: Caller,
  id: string,
  plan: (vm: Vm, now: Date) => Plan,
): Promise<VmChange> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const cur = await readVm(store, who, id);
    const p = plan(cur.value, new Date());
    if (!p.change) return { vm: cur.value, task: null, done: p.done };
    const txn = store.txn().ifModRevision(cur.key, cur.modRevision)
      .put(cur.key, p.vm);
    const task = askedBy(p.task, who);
    const r = await enqueue(txn, task).commit();
    if (r.ok) return { vm: p.vm, task, done: false };
  }
  throw new ConflictError(
    `Cannot change VM ${id}: it changed ${ATTEMPTS} times while trying; try again`,
  );
}
