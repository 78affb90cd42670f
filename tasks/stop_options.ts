/**
 * The stop options a VM task passes to the driver: `force` and
 * `timeoutSeconds` from the task's payload, else the host's configured
 * `worker.stopTimeoutSeconds`; and the time such a task may run.
 *
 * @example
 * ```ts
 * const opts = stopOptions(ctx); // { signal, force: false, timeoutMs: 60000 }
 * await ctx.driver.stop(handle, opts);
 * ```
 */
import type { Config } from "../core/config.ts";
import type { Task } from "../core/schemas.ts";
import {
  PermanentError,
  type StopOptions,
  type TaskContext,
} from "./context.ts";

/** Task kinds whose handler gives a guest time to stop or reboot. */
const POWER_KINDS = new Set(["vm.stop", "vm.reboot", "vm.move"]);
/** Beyond the guest's time: the hard stop (quit, SIGTERM, SIGKILL) and I/O. */
const HARD_STOP_MARGIN_MS = 30_000;
/** The slowest copy an import of the largest upload must be given time for. */
const IMPORT_MIN_BYTES_PER_S = 10 * 1024 * 1024;

/**
 * How long the worker lets `task` run: `tasks.taskTimeoutMs`, or for a
 * task that gives a guest time to stop or reboot, at least that time plus
 * a margin for the hard stop (a 300 s shutdown must not be cut at 120 s);
 * an `image.import` the time to copy and check `images.maxUploadBytes` at
 * 10 MiB/s.
 */
export function taskTimeoutMs(task: Task, config: Config): number {
  const base = config.tasks.taskTimeoutMs;
  if (task.kind === "image.import") {
    const copy = config.images.maxUploadBytes / IMPORT_MIN_BYTES_PER_S;
    return Math.max(base, Math.ceil(copy) * 1000 + HARD_STOP_MARGIN_MS);
  }
  if (!POWER_KINDS.has(task.kind)) return base;
  const t = task.payload.timeoutSeconds;
  const seconds = typeof t === "number" && t > 0
    ? t
    : config.worker.stopTimeoutSeconds;
  return Math.max(base, Math.round(seconds * 1000) + HARD_STOP_MARGIN_MS);
}

/** The driver options of the task's `force` and `timeoutSeconds`. */
export function stopOptions(ctx: TaskContext): Required<StopOptions> {
  const { force, timeoutSeconds } = ctx.task.payload;
  if (force !== undefined && typeof force !== "boolean") {
    throw new PermanentError(
      `Task ${ctx.task.id}: payload.force must be a boolean`,
    );
  }
  if (
    timeoutSeconds !== undefined &&
    !(typeof timeoutSeconds === "number" && timeoutSeconds > 0)
  ) {
    throw new PermanentError(
      `Task ${ctx.task.id}: payload.timeoutSeconds must be a number above 0`,
    );
  }
  const seconds = timeoutSeconds ?? ctx.config.worker.stopTimeoutSeconds;
  return {
    signal: ctx.signal,
    force: force ?? false,
    timeoutMs: Math.round(seconds * 1000),
  };
}
