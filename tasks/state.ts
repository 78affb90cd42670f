/**
 * The task state machine: a table of allowed moves and a pure
 * `transition()` over it. `running -> running` is a reclaim after the
 * claiming worker's lease expired; `running -> queued` is a retry.
 *
 * @example
 * ```ts
 * const next = transition(task, "running", { worker: "h1" });
 * ```
 */
import type { Task, TaskState } from "../core/schemas.ts";

export const ALLOWED: Readonly<Record<TaskState, readonly TaskState[]>> = {
  queued: ["running", "cancelled"],
  running: ["running", "queued", "succeeded", "failed", "cancelled"],
  succeeded: [],
  failed: [],
  cancelled: [],
};

/** True when a task in state `from` may move to `to`. */
export function canTransition(from: TaskState, to: TaskState): boolean {
  return ALLOWED[from].includes(to);
}

/** True for states a task never leaves. */
export function isFinal(state: TaskState): boolean {
  return ALLOWED[state].length === 0;
}

/** How many history events a task keeps (bounded document size). */
export const HISTORY_LIMIT = 20;

/**
 * Returns the task moved to `to`, with a history event appended. Throws a
 * TypeError for a move the table does not allow. Pure: `now` is a parameter.
 */
export function transition(
  task: Task,
  to: TaskState,
  ev: { worker?: string; message?: string; now?: Date } = {},
): Task {
  if (!canTransition(task.state, to)) {
    throw new TypeError(
      `Cannot move task ${task.id} from ${task.state} to ${to}`,
    );
  }
  const at = (ev.now ?? new Date()).toISOString();
  const event = {
    at,
    state: to,
    ...(ev.worker ? { worker: ev.worker } : {}),
    ...(ev.message ? { message: ev.message } : {}),
  };
  return {
    ...task,
    state: to,
    updatedAt: at,
    history: [...task.history, event].slice(-HISTORY_LIMIT),
  };
}
