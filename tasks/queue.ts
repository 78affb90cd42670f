/**
 * The task queue on etcd. A task document lives at `task/<id>`; while it is
 * runnable an index key `queue/<target>/<id>` exists, so a worker watches
 * only its own target and `any`. A worker claims a task by creating
 * `claim/<id>` bound to its lease in a transaction that also compares the
 * task's mod revision; every later write of that task compares the claim
 * (DESIGN.md rules 1 and 3), so a worker whose lease expired can change
 * nothing.
 *
 * @example
 * ```ts
 * const task = newTask({ kind: "vm.start", target: "h1", payload: { vm } });
 * await enqueue(store.txn(), task).commit();
 * const claimed = await claim(store, task.id, worker);
 * if (claimed) await complete(store, claimed, worker, { ok: true });
 * ```
 */
import { idOf, keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import type { Kv, Store, Txn } from "../core/store.ts";
import { type NewTask, newTask } from "../core/task_doc.ts";
import { transition } from "./state.ts";

// Building a task and adding it to a transaction lives in core/ (the
// resource modules write tasks too); kept here for the queue's callers.
export { enqueue, type NewTask, newTask } from "../core/task_doc.ts";

/** Who claims: the worker's name and the lease its claims are bound to. */
export interface WorkerId {
  name: string;
  lease: string;
}

/** Returns a transaction that holds only while `worker` holds the claim. */
export function guard(store: Store, taskId: string, worker: WorkerId): Txn {
  return store.txn().ifLease(keys.claim(taskId), worker.lease);
}

/**
 * Claims a runnable task. Returns the claimed task (state running, attempts
 * counted) or null when it is gone, finished, not yet due (`early` claims
 * a queued task before its `notBefore`: a VM waiting for capacity that a
 * worker saw room for), or claimed by someone else. Never throws for a
 * lost race.
 *
 * A task still `running` whose claim is gone lost its worker (the lease
 * expired). Reclaiming it counts an attempt; when its attempts are used up
 * it ends `failed` instead, with the reason in `error`, and is returned
 * in that state, so the caller can record why on what the task was for.
 */
export async function claim(
  store: Store,
  taskId: string,
  worker: WorkerId,
  now = new Date(),
  opts: { early?: boolean } = {},
): Promise<Kv<Task> | null> {
  const cur = await store.get(keys.task(taskId), Task);
  if (!cur) return null;
  const t = cur.value;
  if (t.state !== "queued" && t.state !== "running") return null;
  if (t.notBefore > now.getTime() && !(opts.early && t.state === "queued")) {
    return null;
  }
  const txn = store.txn()
    .ifModRevision(cur.key, cur.modRevision)
    .ifAbsent(keys.claim(taskId));
  if (t.state === "running" && t.attempts >= t.maxAttempts) {
    return await giveUp(txn, cur, worker, now);
  }
  const next = {
    ...transition(t, "running", {
      worker: worker.name,
      message: t.state === "running"
        ? "reclaimed after lease expiry"
        : undefined,
      now,
    }),
    attempts: t.attempts + 1,
    worker: worker.name,
  };
  const r = await txn
    .put(keys.task(taskId), next)
    .put(keys.claim(taskId), {
      worker: worker.name,
      lease: worker.lease,
      at: now.toISOString(),
    }, { lease: worker.lease })
    .commit();
  if (!r.ok) return null;
  return { ...cur, value: next, modRevision: r.revision };
}

/**
 * Resumes a task whose claim is bound to `worker.lease` (a restarted worker
 * process that adopted its predecessor's lease). Returns the task, counted
 * as a new attempt, or null when the claim is not this lease's. Like
 * `claim()`, a task whose attempts are used up is returned `failed`.
 */
export async function resume(
  store: Store,
  taskId: string,
  worker: WorkerId,
  now = new Date(),
): Promise<Kv<Task> | null> {
  const cur = await store.get(keys.task(taskId), Task);
  if (!cur || cur.value.state !== "running") return null;
  const txn = guard(store, taskId, worker)
    .ifModRevision(cur.key, cur.modRevision);
  if (cur.value.attempts >= cur.value.maxAttempts) {
    return await giveUp(txn.delete(keys.claim(taskId)), cur, worker, now);
  }
  const next = {
    ...transition(cur.value, "running", {
      worker: worker.name,
      message: "resumed by a restarted worker process",
      now,
    }),
    attempts: cur.value.attempts + 1,
    worker: worker.name,
  };
  const r = await txn.put(cur.key, next).commit();
  return r.ok ? { ...cur, value: next, modRevision: r.revision } : null;
}

/**
 * Why a task whose every attempt ended without a result is given up: the
 * worker running it died (a handler that crashes its process, a host that
 * keeps failing) or lost its lease before it could record the outcome.
 */
function gaveUpReason(task: Task): string {
  const last = task.worker ? ` (last ${task.worker})` : "";
  const before = task.error ? `; an earlier attempt failed: ${task.error}` : "";
  const n = `${task.attempts} attempt${task.attempts === 1 ? "" : "s"}`;
  return `gave up after ${n}: the worker running it${last} died or lost its lease before it finished${before}`;
}

/**
 * Ends a running task whose attempts are used up: state failed with the
 * reason, queue entry removed, in `txn` (which holds the caller's compares
 * on the task's revision and its claim). Null when a compare failed.
 */
async function giveUp(
  txn: Txn,
  cur: Kv<Task>,
  worker: WorkerId,
  now: Date,
): Promise<Kv<Task> | null> {
  const error = gaveUpReason(cur.value);
  const next = {
    ...transition(cur.value, "failed", {
      worker: worker.name,
      message: error,
      now,
    }),
    error,
    progress: undefined,
  };
  const r = await txn.put(cur.key, next)
    .delete(keys.queue(cur.value.target, cur.value.id))
    .commit();
  return r.ok ? { ...cur, value: next, modRevision: r.revision } : null;
}

/** Writes a task that this worker holds the claim of; false if it lost it. */
async function writeClaimed(
  store: Store,
  worker: WorkerId,
  task: Task,
  build: (txn: Txn) => Txn,
  extra?: Txn,
): Promise<boolean> {
  const txn = build(
    guard(store, task.id, worker).put(keys.task(task.id), task),
  );
  if (extra) txn.merge(extra);
  return (await txn.commit()).ok;
}

/**
 * Marks a claimed task succeeded, removes its queue entry and claim, and
 * applies `extra` (the handler's own writes) in the same transaction.
 * Returns false when the claim was lost or a compare in `extra` failed.
 */
export async function complete(
  store: Store,
  claimed: Task,
  worker: WorkerId,
  result?: unknown,
  extra?: Txn,
): Promise<boolean> {
  const done = {
    ...transition(claimed, "succeeded", { worker: worker.name }),
    result,
    progress: undefined,
  };
  return await writeClaimed(
    store,
    worker,
    done,
    (t) =>
      t.delete(keys.queue(claimed.target, claimed.id)).delete(
        keys.claim(claimed.id),
      ),
    extra,
  );
}

/** Delay before attempt `attempts + 1`: exponential with jitter, capped. */
export function backoff(
  attempts: number,
  baseMs: number,
  maxMs: number,
  random = Math.random,
): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(exp / 2 + (exp / 2) * random());
}

export interface FailOptions {
  retryable?: boolean;
  baseMs?: number;
  maxMs?: number;
  now?: Date;
  /** Writes applied only when the task fails for good (e.g. VM failed). */
  onGiveUp?: Txn;
}

/**
 * Records a failed attempt. Retries (state queued, notBefore in the future,
 * claim released) while attempts remain and the error is retryable;
 * otherwise the task fails for good. Returns what happened, or "lost" when
 * this worker no longer held the claim.
 */
export async function fail(
  store: Store,
  claimed: Task,
  worker: WorkerId,
  error: string,
  opts: FailOptions = {},
): Promise<"retry" | "failed" | "lost"> {
  const now = opts.now ?? new Date();
  const retry = (opts.retryable ?? true) &&
    claimed.attempts < claimed.maxAttempts;
  if (retry) {
    const delay = backoff(
      claimed.attempts,
      opts.baseMs ?? 500,
      opts.maxMs ?? 30_000,
    );
    const next = {
      ...transition(claimed, "queued", {
        worker: worker.name,
        message: `attempt ${claimed.attempts} failed: ${error}`,
        now,
      }),
      notBefore: now.getTime() + delay,
      error,
      progress: undefined,
    };
    const ok = await writeClaimed(
      store,
      worker,
      next,
      (t) =>
        t.put(keys.queue(claimed.target, claimed.id), {
          notBefore: next.notBefore,
        }).delete(keys.claim(claimed.id)),
    );
    return ok ? "retry" : "lost";
  }
  const next = {
    ...transition(claimed, "failed", {
      worker: worker.name,
      message: error,
      now,
    }),
    error,
    progress: undefined,
  };
  const ok = await writeClaimed(
    store,
    worker,
    next,
    (t) =>
      t.delete(keys.queue(claimed.target, claimed.id)).delete(
        keys.claim(claimed.id),
      ),
    opts.onGiveUp,
  );
  return ok ? "failed" : "lost";
}

/**
 * Sets the progress line of a claimed task (shown by `ucloud task show` and
 * the CLI's `--wait`). Returns false when the claim was lost.
 */
export async function reportProgress(
  store: Store,
  claimed: Task,
  worker: WorkerId,
  progress: string,
): Promise<boolean> {
  return await writeClaimed(store, worker, {
    ...claimed,
    progress,
    updatedAt: new Date().toISOString(),
  }, (t) => t);
}

/**
 * The tasks not finished yet (queued, or running), read through the queue
 * index: `queue/<target>/` for one target, all of `queue/` without one.
 * Cheap: the index holds only runnable tasks, not the task history.
 */
export async function unfinished(
  store: Store,
  target?: string,
): Promise<Task[]> {
  const ids = await store.keys(
    target === undefined ? keys.queues : keys.queueOf(target),
  );
  const docs = await Promise.all(
    ids.map((k) => store.get(keys.task(idOf(k)), Task)),
  );
  return docs.flatMap((d) =>
    d && (d.value.state === "queued" || d.value.state === "running")
      ? [d.value]
      : []
  );
}

/**
 * A finished task document for a change made at once (e.g. the API
 * enabling a host), so it shows in the task history like any other:
 * queued, running and succeeded at `now`, by `worker`, with `result`.
 * Nothing runs it: write it without a queue entry.
 */
export function recordDone(
  t: NewTask & { worker: string; result: unknown; message?: string },
): Task {
  const queued = newTask(t);
  const running = transition(queued, "running", {
    worker: t.worker,
    now: t.now,
  });
  return {
    ...transition(running, "succeeded", {
      worker: t.worker,
      message: t.message,
      now: t.now,
    }),
    attempts: 1,
    worker: t.worker,
    result: t.result,
  };
}
