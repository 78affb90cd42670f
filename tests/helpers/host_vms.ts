/**
 * Watched VM caches (workers/host_vms.ts) for tests that run a `HostNet`
 * or a `VmKeeper` outside a worker: each `start()` lists and watches until
 * `close()`.
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
import { HostVms } from "../../workers/host_vms.ts";

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
