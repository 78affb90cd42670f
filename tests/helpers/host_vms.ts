/**
 * Watched VM caches (workers/host_vms.ts) for tests that run a `HostNet`
 * or a `VmKeeper` outside a worker: each `start()` lists and watches until
 * `close()`; `hostNet()` makes a host's `HostNet` on such a cache.
 *
 * @example
 * ```ts
 * const caches = new VmCaches();
 * try {
 *   const vms = await caches.start(store, "h1", log);
 * } finally {
 *   await caches.close();
 * }
 * ```
 */
import type { Logger } from "../../core/log.ts";
import type { Store } from "../../core/store.ts";
import type { WorkerId } from "../../tasks/queue.ts";
import { HostVms } from "../../workers/host_vms.ts";
import { HostNet, type HostNetOptions } from "../../workers/net.ts";
import type { NetEnv } from "./net_hosts.ts";

/** Caches started for a test, ended together. */
export class VmCaches {
  readonly #stop = new AbortController();
  readonly #started: HostVms[] = [];

  /** A cache of `host`'s VMs, listed now. */
  async start(store: Store, host: string, log: Logger): Promise<HostVms> {
    const vms = await HostVms.start({ store, host, log }, this.#stop.signal);
    this.#started.push(vms);
    return vms;
  }

  /** Ends every watch. */
  async close(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#started.map((v) => v.done));
  }
}

/**
 * The `HostNet` (workers/net.ts) of `worker`'s host as its worker makes it,
 * without an underlay: `env`'s driver of that host, membership keys on
 * `worker`'s lease, its VMs from a new cache of `caches`; `more` overrides.
 */
export async function hostNet(
  env: NetEnv,
  store: Store,
  caches: VmCaches,
  worker: WorkerId,
  more: Partial<HostNetOptions> = {},
): Promise<HostNet> {
  const host = worker.name;
  return new HostNet({
    store,
    host,
    driver: env.driver(host, false),
    underlay: null,
    lease: () => worker.lease,
    log: env.log.child({ host }),
    vms: await caches.start(store, host, env.log),
    ...more,
  });
}
