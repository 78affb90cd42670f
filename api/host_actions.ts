/**
 * Draining and enabling a host (admins only), as `POST /v1/hosts/{name}/
 * drain|enable` and the web's hosts page do them. Every state change is a
 * task document:
 *
 * - draining sets the host's state to `draining` (placement skips it) and
 *   enqueues `host.drain`, which moves every VM off it, in one transaction
 *   comparing the host document it read;
 * - enabling sets it back to `active` and records a finished `host.enable`
 *   task in one transaction; a shutdown not yet done is called off with
 *   the drain.
 *
 * @example
 * ```ts
 * const { host, task } = await drainHost(deps, admin, "h1"); // task: null if already draining
 * await enableHost(deps, admin, "h1");
 * ```
 */
import { ConflictError, NotFoundError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import { Host, type Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { enqueue, newTask, recordDone } from "../tasks/queue.ts";
import { type Principal, requireAdmin } from "./env.ts";
import { readHostView } from "./host_views.ts";
import type { HostView } from "./host_views.ts";

/** How often a state change is retried after a lost compare. */
const ATTEMPTS = 5;

/** What the actions need: the store and the tasks' attempt limit. */
export interface HostActionDeps {
  store: Store;
  config: { tasks: { maxAttempts: number } };
}

/** The host after a change, and the task of the change (null: no change). */
export interface HostChange {
  host: HostView;
  task: Task | null;
}

/** Reads the host; NotFoundError when it is not registered. */
async function readHost(store: Store, name: string) {
  const h = await store.get(keys.host(name), Host);
  if (!h) throw new NotFoundError("host", name);
  return h;
}

/**
 * Drains host `name`: state `draining` and a `host.drain` task, or no
 * change (task null) when it already drains.
 */
export async function drainHost(
  { store, config }: HostActionDeps,
  who: Principal,
  name: string,
): Promise<HostChange> {
  requireAdmin(who, `drain host ${name}`);
  for (let i = 0; i < ATTEMPTS; i++) {
    const h = await readHost(store, name);
    if (h.value.state === "draining") {
      return { host: await readHostView(store, name), task: null };
    }
    const task = newTask({
      kind: "host.drain",
      target: "any",
      payload: { host: name, reason: `drained by ${who.name}` },
      owner: who.name,
      maxAttempts: config.tasks.maxAttempts,
      by: who,
    });
    const txn = store.txn().ifModRevision(h.key, h.modRevision)
      .put(h.key, { ...h.value, state: "draining" });
    if ((await enqueue(txn, task).commit()).ok) {
      return { host: await readHostView(store, name), task };
    }
  }
  throw new ConflictError(
    `Cannot drain host ${name}: it changed ${ATTEMPTS} times while trying; try again`,
  );
}

/**
 * Enables host `name` for new VMs: state `active` and a finished
 * `host.enable` task, or no change (task null) when it is active.
 */
export async function enableHost(
  { store, config }: HostActionDeps,
  who: Principal,
  name: string,
): Promise<HostChange> {
  requireAdmin(who, `enable host ${name}`);
  for (let i = 0; i < ATTEMPTS; i++) {
    const h = await readHost(store, name);
    if (h.value.state === "active") {
      return { host: await readHostView(store, name), task: null };
    }
    const task = recordDone({
      kind: "host.enable",
      target: "any",
      payload: { host: name, reason: `enabled by ${who.name}` },
      owner: who.name,
      maxAttempts: config.tasks.maxAttempts,
      worker: "api",
      message: `host ${name}: ${h.value.state} -> active`,
      result: { host: name, state: "active", was: h.value.state },
    });
    // A shutdown not yet done is called off with the drain.
    const { shutdown: _, ...rest } = h.value;
    const r = await store.txn().ifModRevision(h.key, h.modRevision)
      .put(h.key, { ...rest, state: "active" })
      .ifAbsent(keys.task(task.id)).put(keys.task(task.id), task)
      .commit();
    if (r.ok) return { host: await readHostView(store, name), task };
  }
  throw new ConflictError(
    `Cannot enable host ${name}: it changed ${ATTEMPTS} times while trying; try again`,
  );
}
