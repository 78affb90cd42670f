/**
 * Shared steps of the VM task handlers: reading the VM named by the task,
 * status writes guarded by the claim and the VM's mod revision, and
 * forwarding a task to the host that actually runs the VM.
 *
 * @example
 * ```ts
 * const vm = await readVm(ctx);
 * if (!vm) return { result: { skipped: "vm is gone" } };
 * return { txn: statusTxn(ctx, vm, { phase: "running" }) };
 * ```
 */
import { keys } from "../core/keys.ts";
import { type Task, Vm, type VmStatus } from "../core/schemas.ts";
import { releaseIn } from "../scheduler/ledger.ts";
import type { Kv, Txn } from "../core/store.ts";
import { enqueue, newTask } from "./queue.ts";
import {
  PermanentError,
  type TaskContext,
  type TaskOutcome,
} from "./context.ts";

/** The VM id in the task's payload. */
export function vmIdOf(ctx: TaskContext): string {
  const id = ctx.task.payload.vm;
  if (typeof id !== "string") {
    throw new PermanentError(`Task ${ctx.task.id} has no payload.vm`);
  }
  return id;
}

/** Reads the task's VM; null when it no longer exists. */
export async function readVm(ctx: TaskContext): Promise<Kv<Vm> | null> {
  return await ctx.store.get(keys.vm(vmIdOf(ctx)), Vm);
}

/** The VM with its status changed; `undefined` fields are removed. */
export function withStatus(vm: Vm, patch: Partial<VmStatus>): Vm {
  const status = {
    ...vm.status,
    ...patch,
    updatedAt: new Date().toISOString(),
  };
  for (const k of Object.keys(status) as (keyof VmStatus)[]) {
    if (status[k] === undefined) delete status[k];
  }
  return { ...vm, status };
}

/** Claim-guarded write of a new VM status, comparing the VM's revision. */
export function statusTxn(
  ctx: TaskContext,
  vm: Kv<Vm>,
  patch: Partial<VmStatus>,
): Txn {
  return ctx.guard().ifModRevision(vm.key, vm.modRevision).put(
    vm.key,
    withStatus(vm.value, patch),
  );
}

/**
 * Writes a status now (not at completion), e.g. phase "starting", so users
 * see progress. Returns the new document, or null when the VM changed
 * meanwhile (the handler should read again).
 */
export async function writeStatus(
  ctx: TaskContext,
  vm: Kv<Vm>,
  patch: Partial<VmStatus>,
): Promise<Kv<Vm> | null> {
  const value = withStatus(vm.value, patch);
  const r = await ctx.guard().ifModRevision(vm.key, vm.modRevision).put(
    vm.key,
    value,
  ).commit();
  return r.ok ? { ...vm, value, modRevision: r.revision } : null;
}

/**
 * When the VM runs on another host than this worker's, hands the work to
 * that host by enqueuing the same kind of task there.
 */
export function forwardTo(ctx: TaskContext, host: string): TaskOutcome {
  const task = newTask({
    kind: ctx.task.kind,
    target: host,
    payload: ctx.task.payload,
    owner: ctx.task.owner,
    maxAttempts: ctx.task.maxAttempts,
  });
  return {
    result: { forwarded: task.id, host },
    txn: enqueue(ctx.guard(), task),
  };
}

/**
 * Adds to `txn` the release of VM `id`'s reservation on `host`
 * (scheduler/ledger.ts `releaseIn()`: comparing what it read, also when
 * the entry is absent).
 */
export function releaseAlloc(
  ctx: TaskContext,
  txn: Txn,
  host: string,
  id: string,
): Promise<Txn> {
  return releaseIn(ctx.store, txn, host, id);
}

/**
 * Adds to `txn`: the VM back to pending (no host, no process) with `reason`,
 * and a `vm.create` task that places it again. Returns that task.
 */
export function replace(
  ctx: TaskContext,
  txn: Txn,
  vm: Kv<Vm>,
  reason: string,
  payload: Record<string, unknown> = {},
): Task {
  txn.put(
    vm.key,
    withStatus(vm.value, {
      phase: "pending",
      host: undefined,
      handle: undefined,
      incarnation: undefined,
      reason,
    }),
  );
  const task = newTask({
    kind: "vm.create",
    target: "any",
    payload: { vm: vm.value.id, reason, ...payload },
    owner: vm.value.owner,
    maxAttempts: ctx.task.maxAttempts,
  });
  enqueue(txn, task);
  return task;
}
