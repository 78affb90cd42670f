/**
 * Waiting for a change: polls the API until a VM reaches its goal, a NIC
 * is plugged in or gone, a task ends, or a host is drained or shut down,
 * with one progress line on stderr (rewritten in place on a terminal).
 * Each throws `CliError` when the change fails or time runs out, saying
 * that it goes on in the background.
 *
 * @module
 */
import {
  followTask,
  type HostView,
  type Operation,
  orNull,
  type Task,
  type Vm,
} from "./client.ts";
import type { WaitContext } from "./command.ts";
import { CliError } from "./errors.ts";
import { label, type Output } from "./output.ts";

/** What a VM operation waits for. */
export type Goal = "running" | "stopped" | "deleted";

/** One progress line on stderr; rewritten in place on a terminal. */
export class Progress {
  #last = "";
  #open = false;
  readonly #tty: boolean;
  constructor(private readonly out: Output) {
    this.#tty = out.isTerminal?.() ?? false;
  }

  show(status: string, prefix: string): void {
    if (status === this.#last) return;
    this.#last = status;
    const line = `${prefix} ${status}`;
    if (!this.#tty) return this.out.write(`${line}\n`);
    const columns = this.out.columns?.() ?? 80;
    const fitted = line.length < columns
      ? line
      : `${line.slice(0, columns - 2)}…`;
    this.out.write(`\r\x1b[K${fitted}`);
    this.#open = true;
  }

  end(): void {
    if (this.#open) this.out.write("\n");
    this.#open = false;
  }
}

function describe(vm: Vm, task: Task | null, gone: boolean): string {
  const where = vm.status.host ? ` on ${vm.status.host}` : "";
  // Why it waits (e.g. no host has room), as `vm show` tells it.
  const why = !gone && vm.status.reason ? ` (${vm.status.reason})` : "";
  const parts = [
    `${label(vm)}: ${gone ? "deleted" : vm.status.phase}${where}${why}`,
  ];
  if (task) {
    const progress = task.progress ? `: ${task.progress}` : "";
    parts.push(
      `task ${task.id} ${task.kind} ${task.state} ` +
        `(attempt ${task.attempts}/${task.maxAttempts})${progress}`,
    );
  }
  return parts.join(" | ");
}

/**
 * Polls the task and the VM until the VM reaches `goal`; prints a progress
 * line on stderr at every change. Throws `CliError` when the task fails, the
 * VM fails or crashes (after the operation began), or time runs out.
 */
export async function waitFor(
  { client, stderr, pollIntervalMs }: WaitContext,
  start: Operation,
  goal: Goal,
  timeoutSeconds: number,
): Promise<Operation> {
  const began = Date.now();
  const deadline = began + timeoutSeconds * 1000;
  const since = start.task ? Date.parse(start.task.createdAt) : NaN;
  const progress = new Progress(stderr);
  let { vm, task } = start;
  let gone = false;
  let movedOn = false;
  try {
    while (true) {
      const elapsed = `[${((Date.now() - began) / 1000).toFixed(1)}s]`;
      progress.show(describe(vm, task, gone), elapsed);
      const phase = vm.status.phase;
      if (gone || phase === goal) return { vm, task };
      if (task?.state === "failed" || task?.state === "cancelled") {
        throw new CliError(
          `task ${task.id} (${task.kind}) ${task.state}: ` +
            (task.error ?? vm.status.reason ?? "no reason given"),
        );
      }
      if (
        goal !== "deleted" &&
        (phase === "failed" || phase === "crashed" || phase === "error")
      ) {
        // A failure from before this operation does not count.
        if (!task || movedOn || Date.parse(vm.status.updatedAt) > since) {
          throw new CliError(
            `${label(vm)} ${phase}: ${vm.status.reason ?? "no reason given"}`,
          );
        }
      } else movedOn = true;
      if (Date.now() >= deadline) {
        const taskState = task ? `, task ${task.id} ${task.state}` : "";
        const why = vm.status.reason ? ` (${vm.status.reason})` : "";
        throw new CliError(
          `Cannot wait longer than ${timeoutSeconds}s for ${label(vm)} to be ` +
            `${goal}: phase is ${phase}${why}${taskState}. The operation goes on ` +
            `in the background: see 'ucloud vm show ${vm.id}', or wait ` +
            "longer with --timeout",
        );
      }
      await sleep(Math.min(pollIntervalMs, deadline - Date.now()));
      const [nextTask, nextVm] = await Promise.all([
        task ? client.tasks.get(task.id) : null,
        orNull(client.vms.get(vm.id)),
      ]);
      task = nextTask;
      if (nextVm) vm = nextVm;
      else if (goal === "deleted") gone = true;
      else throw new CliError(`${label(vm)} was deleted while waiting`);
    }
  } finally {
    progress.end();
  }
}

/**
 * Polls the VM and its `vm.nics` task until NIC `slot` is in (`attach`: the
 * task, followed to another host when forwarded, succeeded) or gone
 * (`detach`); prints a progress line on stderr at every change. Throws
 * `CliError` when the task fails, the VM is deleted, or time runs out.
 */
export async function waitNic(
  { client, stderr, pollIntervalMs }: WaitContext,
  start: Operation,
  slot: number,
  change: "attach" | "detach",
  timeoutSeconds: number,
): Promise<Operation> {
  const began = Date.now();
  const deadline = began + timeoutSeconds * 1000;
  const progress = new Progress(stderr);
  let { vm, task } = start;
  try {
    while (true) {
      const elapsed = `[${((Date.now() - began) / 1000).toFixed(1)}s]`;
      progress.show(describe(vm, task, false), elapsed);
      const done = change === "attach"
        ? !task || task.state === "succeeded"
        : !vm.nics?.some((n) => n.slot === slot);
      if (done) return { vm, task };
      if (task?.state === "failed" || task?.state === "cancelled") {
        throw new CliError(
          `task ${task.id} (${task.kind}) ${task.state}: ` +
            (task.error ?? "no reason given"),
        );
      }
      if (Date.now() >= deadline) {
        const goal = change === "attach" ? "plugged in" : "removed";
        const state = task
          ? `task ${task.id} is ${task.state}`
          : "the NIC is still detaching";
        throw new CliError(
          `Cannot wait longer than ${timeoutSeconds}s for NIC ${slot} of ` +
            `${label(vm)} to be ${goal}: ${state}. The change goes on in ` +
            `the background: see 'ucloud vm show ${vm.id}', or wait longer ` +
            "with --timeout",
        );
      }
      await sleep(Math.min(pollIntervalMs, deadline - Date.now()));
      const [nextTask, nextVm] = await Promise.all([
        task ? followTask(client, task.id) : null,
        orNull(client.vms.get(vm.id)),
      ]);
      if (!nextVm) throw new CliError(`${label(vm)} was deleted while waiting`);
      task = nextTask;
      vm = nextVm;
    }
  } finally {
    progress.end();
  }
}

/**
 * Polls the host list until `host` has no VM left; prints a progress line
 * on stderr at every change. Throws `CliError` when the drain task fails,
 * the host is enabled again, or time runs out.
 */
export async function waitDrained(
  { client, stderr, pollIntervalMs }: WaitContext,
  start: { host: HostView; task: Task | null },
  timeoutSeconds: number,
): Promise<HostView> {
  const began = Date.now();
  const deadline = began + timeoutSeconds * 1000;
  const progress = new Progress(stderr);
  let { host, task } = start;
  try {
    while (true) {
      const elapsed = `[${((Date.now() - began) / 1000).toFixed(1)}s]`;
      const left = host.vms.length
        ? `${host.vms.length} VM(s) left: ${host.vms.join(", ")}`
        : "no VM left";
      const drain = task ? ` | task ${task.id} ${task.kind} ${task.state}` : "";
      progress.show(
        `host ${host.name}: ${host.state}, ${left}${drain}`,
        elapsed,
      );
      if (host.vms.length === 0) return host;
      if (host.state !== "draining") {
        throw new CliError(
          `host ${host.name} is ${host.state} again: the drain was undone`,
        );
      }
      if (task?.state === "failed" || task?.state === "cancelled") {
        throw new CliError(
          `task ${task.id} (${task.kind}) ${task.state}: ` +
            (task.error ?? "no reason given"),
        );
      }
      if (Date.now() >= deadline) {
        throw new CliError(
          `Cannot wait longer than ${timeoutSeconds}s for host ${host.name} ` +
            `to be drained: ${host.vms.length} VM(s) left. The drain goes on ` +
            `in the background: see 'ucloud host list', or wait longer with ` +
            "--timeout",
        );
      }
      await sleep(Math.min(pollIntervalMs, deadline - Date.now()));
      const [list, nextTask] = await Promise.all([
        client.hosts.list(),
        task ? client.tasks.get(task.id) : null,
      ]);
      const found = list.items.find((h) => h.name === host.name);
      if (!found) {
        throw new CliError(`host ${host.name} was removed while waiting`);
      }
      host = found;
      task = nextTask;
    }
  } finally {
    progress.end();
  }
}

/**
 * Waits for a drain (see {@linkcode waitDrained}), then until the host's
 * worker has exited (`shutdown.done`, no longer alive).
 */
export async function waitShutdown(
  ctx: WaitContext,
  start: { host: HostView; task: Task | null },
  timeoutSeconds: number,
): Promise<HostView> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let host = await waitDrained(ctx, start, timeoutSeconds);
  while (!host.shutdown?.done || host.alive) {
    if (!host.shutdown) {
      throw new CliError(
        `host ${host.name} is ${host.state} again: the shutdown was called off`,
      );
    }
    if (Date.now() >= deadline) {
      throw new CliError(
        `Cannot wait longer than ${timeoutSeconds}s for the worker of host ` +
          `${host.name} to exit; see 'ucloud host list'`,
      );
    }
    await sleep(Math.min(ctx.pollIntervalMs, deadline - Date.now()));
    const list = await ctx.client.hosts.list();
    const found = list.items.find((h) => h.name === host.name);
    if (!found) {
      throw new CliError(`host ${host.name} was removed while waiting`);
    }
    host = found;
  }
  return host;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/**
 * Polls the operation's task (followed when forwarded) until it succeeded;
 * prints a progress line on stderr at every change. Throws `CliError`
 * when it fails or time runs out.
 */
export async function waitTask(
  { client, stderr, pollIntervalMs }: WaitContext,
  start: Operation,
  timeoutSeconds: number,
): Promise<Task> {
  const began = Date.now();
  const deadline = began + timeoutSeconds * 1000;
  const progress = new Progress(stderr);
  let task = start.task!;
  try {
    while (true) {
      const elapsed = `[${((Date.now() - began) / 1000).toFixed(1)}s]`;
      progress.show(describe(start.vm, task, false), elapsed);
      if (task.state === "succeeded") return task;
      if (task.state === "failed" || task.state === "cancelled") {
        throw new CliError(
          `task ${task.id} (${task.kind}) ${task.state}: ` +
            (task.error ?? "no reason given"),
        );
      }
      if (Date.now() >= deadline) {
        throw new CliError(
          `Cannot wait longer than ${timeoutSeconds}s for task ${task.id} ` +
            `(${task.kind}): it is ${task.state}. It goes on in the ` +
            `background: see 'ucloud task show ${task.id}'`,
        );
      }
      await sleep(Math.min(pollIntervalMs, deadline - Date.now()));
      task = await followTask(client, task.id);
    }
  } finally {
    progress.end();
  }
}
