/**
 * The stop options a VM task passes to the driver: `force` and
 * `timeoutSeconds` from the task's payload, else the host's configured
 * `worker.stopTimeoutSeconds`.
 *
 * @example
 * ```ts
 * const opts = stopOptions(ctx); // { signal, force: false, timeoutMs: 60000 }
 * await ctx.driver.stop(handle, opts);
 * ```
 */
import {
  PermanentError,
  type StopOptions,
  type TaskContext,
} from "./context.ts";

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
