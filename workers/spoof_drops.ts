/**
 * Tells a VM's owner that its NICs send what they may not: after a network
 * sync (workers/net.ts) the host's port filter counters are read
 * (`NetDriver.portDrops()`: every dropping rule of a port, both nft
 * tables), and when a NIC's count differs from the one in its VM's
 * `status.spoofDrops` (it rose, or the port's rules were made again and
 * counted anew), the VM document gets the count and the time, in a
 * transaction comparing the revision the decision was made on. At most one
 * write per VM per `minIntervalMs` (default a minute), a lost compare is
 * tried at the next sync; the field holds at most one entry per NIC.
 * `ucloud vm show` prints a warning line per NIC.
 *
 * @example
 * ```ts
 * const drops = new SpoofDrops({ store, host: "h1", driver, log });
 * await drops.report(vms.items, { signal }); // after driver.sync()
 * ```
 */
import type { Logger } from "../core/log.ts";
import type { SpoofDrops as Count, Vm } from "../core/schemas.ts";
import type { Kv, Store } from "../core/store.ts";
import { type NetDriver, nicTapName } from "../drivers/net/mod.ts";

/** Default: at most one write per VM per minute. */
export const DROPS_INTERVAL_MS = 60_000;
/** Counters are read at most this often (a sync may run many times a second). */
const READ_EVERY_MS = 10_000;

export interface SpoofDropsOptions {
  store: Store;
  host: string;
  driver: Pick<NetDriver, "portDrops">;
  log: Logger;
  /** Least time between two writes of one VM's counts (default a minute). */
  minIntervalMs?: number;
}

/** Writes rising port filter counts into the VMs' status. */
export class SpoofDrops {
  readonly #o: SpoofDropsOptions;
  readonly #interval: number;
  /** When each VM's counts were last written (monotonic ms). */
  readonly #written = new Map<string, number>();
  #readAt = -Infinity;

  constructor(opts: SpoofDropsOptions) {
    this.#o = opts;
    this.#interval = opts.minIntervalMs ?? DROPS_INTERVAL_MS;
  }

  /**
   * Reads the counters (unless read lately) and writes the counts that
   * changed of `vms` (a listing: those this host runs are looked at).
   * Returns the ids of the VMs written.
   */
  async report(
    vms: Kv<Vm>[],
    opts: { signal?: AbortSignal } = {},
  ): Promise<string[]> {
    const now = performance.now();
    if (now - this.#readAt < Math.min(READ_EVERY_MS, this.#interval)) {
      return [];
    }
    this.#readAt = now;
    const mine = vms.filter((kv) => kv.value.status.host === this.#o.host);
    const ids = new Set(mine.map((kv) => kv.value.id));
    for (const id of this.#written.keys()) {
      if (!ids.has(id)) this.#written.delete(id);
    }
    const due = mine.filter((kv) =>
      now - (this.#written.get(kv.value.id) ?? -Infinity) >= this.#interval
    );
    if (!due.length) return [];
    const drops = await this.#o.driver.portDrops(opts);
    const written: string[] = [];
    for (const kv of due) {
      const counts = changed(kv.value, drops, new Date().toISOString());
      if (!counts) continue;
      const status = { ...kv.value.status, spoofDrops: counts };
      const r = await this.#o.store.txn()
        .ifModRevision(kv.key, kv.modRevision)
        .put(kv.key, { ...kv.value, status }).commit();
      if (!r.ok) continue;
      this.#written.set(kv.value.id, now);
      written.push(kv.value.id);
      this.#o.log.warn("port filter dropped packets a VM sent", {
        vm: kv.value.id,
        drops: counts,
      });
    }
    return written;
  }
}

/**
 * The VM's new `spoofDrops` when a NIC's count differs from the stored
 * one (not when the port has counted nothing); null when none does.
 */
function changed(
  vm: Vm,
  drops: Map<string, number>,
  at: string,
): Record<string, Count> | null {
  const prev = vm.status.spoofDrops ?? {};
  const next: Record<string, Count> = {};
  let rose = false;
  for (const nic of vm.nics) {
    const slot = String(nic.slot);
    const packets = drops.get(nicTapName(vm.id, nic)) ?? 0;
    const had = prev[slot];
    if (packets > 0 && packets !== had?.packets) {
      next[slot] = { packets, at };
      rose = true;
    } else if (had) next[slot] = had;
  }
  return rose ? next : null;
}
