/**
 * Ordered host shutdown, for maintenance reboots: `ucloud host shutdown h1`
 * (or SIGTERM with `worker.shutdownDrain`) drains the host with the
 * existing drain, then its worker exits 0 and its lease ends, so nothing is
 * left to fence or to hand over and nothing comes back.
 *
 * {@linkcode requestShutdown} marks the host document in one transaction
 * comparing the host's and its `alive/` key's revisions: state `draining`
 * (placement skips it), `shutdown` naming the live incarnation, and a
 * `host.drain` task. The worker of that incarnation watches its host
 * document ({@linkcode awaitDrained}); once no VM is reserved there
 * (`alloc/<host>`), no VM files are left on the host and no task waits in
 * its queue, it stops claiming, lets its running tasks finish, checks once
 * more (no VM of this host's watched cache, workers/host_vms.ts, left)
 * and records `shutdown.done` ({@linkcode markDone}, comparing the
 * host document it read): the commit is the decision to exit. Enabling the
 * host (`ucloud host enable`) drops the request. A new incarnation (after
 * the reboot) registers without it, still draining until enabled.
 *
 * @example
 * ```ts
 * await requestShutdown(store, { host: "h1", by: "alice", maxAttempts: 5 });
 * if (await awaitDrained({ store, host, lease, driver, busy, signal, log })) {
 *   await markDone({ store, host, lease, driver, log, vms }); // then exit
 * }
 * ```
 */
import { ConflictError, NotFoundError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Alive, Alloc, Host, type Task } from "../core/schemas.ts";
import type { Kv, Store } from "../core/store.ts";
import { sleep, watchPrefix } from "../core/watch.ts";
import type { VmDriver } from "../tasks/context.ts";
import { enqueue, newTask } from "../tasks/queue.ts";
import type { HostVms } from "./host_vms.ts";
import { usage } from "../scheduler/resources.ts";

/** How often a request is retried after a lost compare. */
const ATTEMPTS = 5;

export interface ShutdownRequest {
  host: string;
  /** Who asks (a user name, or the signal on the host). */
  by: string;
  /** The user who asks: the drain task's owner. */
  owner?: string;
  maxAttempts: number;
  now?: Date;
}

/**
 * Asks the live incarnation of `host` to drain and exit. Returns the
 * `host.drain` task, or null when that incarnation was already asked.
 * Throws NotFoundError for an unknown host and ConflictError when no worker
 * runs there (nothing would carry it out).
 */
export async function requestShutdown(
  store: Store,
  req: ShutdownRequest,
): Promise<Task | null> {
  const { host, by } = req;
  for (let i = 0; i < ATTEMPTS; i++) {
    const [h, a] = await Promise.all([
      store.get(keys.host(host), Host),
      store.get(keys.alive(host), Alive),
    ]);
    if (!h) throw new NotFoundError("host", host);
    if (!a) {
      throw new ConflictError(
        `Cannot shut down host ${host}: no worker runs there`,
      );
    }
    const inc = a.value.incarnation;
    if (h.value.shutdown?.incarnation === inc) return null;
    const at = (req.now ?? new Date()).toISOString();
    const task = newTask({
      kind: "host.drain",
      target: "any",
      payload: { host, reason: `shut down by ${by}` },
      owner: req.owner,
      maxAttempts: req.maxAttempts,
      now: req.now,
    });
    const txn = store.txn().ifModRevision(h.key, h.modRevision)
      .ifModRevision(a.key, a.modRevision)
      .put(h.key, {
        ...h.value,
        state: "draining",
        shutdown: { incarnation: inc, at, by },
      });
    if ((await enqueue(txn, task).commit()).ok) return task;
  }
  throw new ConflictError(
    `Cannot shut down host ${host}: it changed ${ATTEMPTS} times while trying; try again`,
  );
}

/** True when `h` asks incarnation `lease` to shut down (not yet done). */
export function asked(h: Host | undefined, lease: string): boolean {
  return h?.shutdown?.incarnation === lease && h.shutdown.done === undefined;
}

export interface DrainedOptions {
  store: Store;
  host: string;
  /** This incarnation's lease. */
  lease: string;
  driver: Pick<VmDriver, "listLocal">;
  /** True while tasks for this host wait in its queue or run here. */
  busy: () => boolean;
  signal: AbortSignal;
  log: Logger;
  everyMs?: number;
}

/**
 * Resolves true once this incarnation was asked to shut down and the host
 * is empty (see the module comment), false when `signal` aborts first.
 * Watches the host document; checks emptiness every `everyMs` while asked.
 */
export async function awaitDrained(o: DrainedOptions): Promise<boolean> {
  const key = keys.host(o.host);
  const end = new AbortController();
  const signal = AbortSignal.any([o.signal, end.signal]);
  let wanted = false;
  const read = (raw: string) => {
    try {
      return asked(Host.parse(JSON.parse(raw)), o.lease);
    } catch {
      return false;
    }
  };
  const watching = watchPrefix(o.store, key, {
    signal,
    log: o.log,
    onReset: (items) => {
      wanted = items.some((it) => it.key === key && read(it.value));
    },
    onEvent: (ev) => {
      if (ev.key === key) wanted = ev.type === "put" && read(ev.value);
    },
  });
  try {
    let said = false;
    while (!signal.aborted) {
      if (wanted && !said) {
        o.log.info("shutdown asked: waiting until the host is drained");
        said = true;
      }
      if (wanted && !o.busy() && await empty(o)) return true;
      await sleep(o.everyMs ?? 500, signal);
    }
    return false;
  } finally {
    end.abort();
    await watching;
  }
}

/** No VM reserved on the host and no VM files left on it. */
async function empty(
  o: Pick<DrainedOptions, "store" | "host" | "driver">,
): Promise<boolean> {
  const alloc = await o.store.get(keys.alloc(o.host), Alloc);
  if (usage(alloc?.value ?? null).vms > 0) return false;
  return (await o.driver.listLocal()).length === 0;
}

/**
 * The last check before the worker exits, once nothing runs here: the host
 * is still empty, no VM document names it, and the shutdown is still asked
 * for; then records `shutdown.done` comparing the host document and this
 * incarnation's `alive/` key. False: stay (the caller waits again).
 */
export async function markDone(
  o: Omit<DrainedOptions, "signal" | "busy" | "everyMs"> & {
    /** This host's VMs, kept from a watch (workers/host_vms.ts). */
    vms: Pick<HostVms, "items">;
  },
  now = new Date(),
): Promise<boolean> {
  if (!(await empty(o))) return false;
  const h: Kv<Host> | null = await o.store.get(keys.host(o.host), Host);
  if (!h || !asked(h.value, o.lease)) return false;
  // Once per shutdown: a VM placed here without a reservation stays put.
  const left = o.vms.items();
  if (left.length) {
    o.log.warn("shutdown waits: VM documents still name this host", {
      vms: left.map((v) => v.value.id),
    });
    return false;
  }
  const r = await o.store.txn().ifModRevision(h.key, h.modRevision)
    .ifLease(keys.alive(o.host), o.lease)
    .put(h.key, {
      ...h.value,
      shutdown: { ...h.value.shutdown!, done: now.toISOString() },
    }).commit();
  return r.ok;
}
