/**
 * The failure watcher every worker runs: when another host's `alive/` key
 * disappears (its lease ended), it enqueues `host.failed` for that
 * incarnation; every worker watches, exactly one enqueues
 * (`enqueueHostFailed`). Hosts already dead at start are caught by the
 * listing.
 *
 * @example
 * ```ts
 * await watchFailures({ store, host: "h1", log, signal });
 * ```
 */
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Host } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { watchPrefix } from "../core/watch.ts";
import { enqueueHostFailed } from "../tasks/host_failed.ts";

export interface FailureWatchOptions {
  store: Store;
  /** This worker's host, never taken for a failed one. */
  host: string;
  log: Logger;
  signal: AbortSignal;
}

/** Watches `alive/` until `signal` aborts (see the module comment). */
export async function watchFailures(o: FailureWatchOptions): Promise<void> {
  const { store } = o;
  const incarnations = new Map<string, string>();
  const failed = async (host: string, incarnation: string | undefined) => {
    if (!incarnation || host === o.host) return;
    const task = await enqueueHostFailed(store, host, incarnation);
    if (task) {
      o.log.warn("host lease expired: failover enqueued", {
        failed: host,
        incarnation,
        task: task.id,
      });
    }
  };
  await watchPrefix(store, keys.alives, {
    signal: o.signal,
    log: o.log,
    onReset: async (items, revision) => {
      incarnations.clear();
      for (const it of items) {
        incarnations.set(it.key.slice(keys.alives.length), leaseOf(it.value));
      }
      // At the listing's revision: a host registering meanwhile is not
      // taken for one without an alive key.
      const hosts = await store.list(keys.hosts, Host, { revision });
      for (const h of hosts.items) {
        if (!incarnations.has(h.value.name)) {
          await failed(h.value.name, h.value.incarnation);
        }
      }
    },
    onEvent: async (ev) => {
      const host = ev.key.slice(keys.alives.length);
      if (ev.type === "put") incarnations.set(host, leaseOf(ev.value));
      else {
        const inc = incarnations.get(host);
        incarnations.delete(host);
        await failed(host, inc);
      }
    },
  });
}

/** The lease named in an `alive/` or `claim/` document (both have `lease`). */
export function leaseOf(raw: string): string {
  try {
    return String(JSON.parse(raw).lease ?? "");
  } catch {
    return "";
  }
}
