/**
 * The taps of VMs whose documents this worker cannot read (e.g. written by
 * a newer release) and that may be on this host (workers/host_vms.ts
 * `unreadableHere()`): a network sync keeps their ports
 * (`HostNetState.keep`). Taps are named by the NIC's MAC
 * (drivers/net/names.ts). A VM last seen here has the taps of that
 * version's NICs; for one whose host was never known, the `ipam/mac/<mac>`
 * entries name each MAC's VM and slot: they are listed in pages, once for
 * each set of such ids, not on every sync.
 *
 * @example
 * ```ts
 * const taps = new UnreadableTaps(store);
 * const keep = await taps.of(vms.unreadableHere()); // ["uct02c10d...", "uct1a2b3c4d0", ...]
 * ```
 *
 * @module
 */
import { keys } from "../core/keys.ts";
import { IpamEntry, MAX_NICS, type Vm } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { legacyTapName, nicTapName, tapName } from "../drivers/net/names.ts";

/** Entries per page of the `ipam/mac/` listing. */
export const IPAM_PAGE = 500;

/** See the module comment. */
export class UnreadableTaps {
  readonly #store: Store;
  readonly #pageSize: number;
  /** The ids of the last listing, and the taps it found for them. */
  #memo: { ids: string; taps: string[] } | null = null;

  constructor(store: Store, pageSize = IPAM_PAGE) {
    this.#store = store;
    this.#pageSize = pageSize;
  }

  /**
   * Every tap VMs `vms` may have here (id -> its last version seen here,
   * or null when unknown): that version's NICs' taps, the ipam entries'
   * taps of the unknown ones, and every slot's legacy name.
   */
  async of(vms: Map<string, Vm | null>): Promise<string[]> {
    const unknown = [...vms].filter(([, v]) => !v).map(([id]) => id).sort();
    const taps = unknown.length ? [...await this.#byIpam(unknown)] : [];
    for (const [id, vm] of vms) {
      for (const n of vm?.nics ?? []) taps.push(nicTapName(id, n));
      for (let slot = 0; slot < MAX_NICS; slot++) {
        taps.push(legacyTapName(id, slot));
      }
    }
    return taps;
  }

  /** The taps of `ids`' MACs, by the ipam entries (listed again if changed). */
  async #byIpam(ids: string[]): Promise<string[]> {
    const key = JSON.stringify(ids);
    if (this.#memo?.ids === key) return this.#memo.taps;
    const wanted = new Set(ids);
    const prefix = keys.ipamMac("");
    const taps: string[] = [];
    let revision: string | undefined;
    let from: string | undefined;
    for (;;) {
      const page = await this.#store.list(prefix, IpamEntry, {
        limit: this.#pageSize,
        from,
        revision,
      });
      revision ??= page.revision;
      for (const { key, value } of page.items) {
        if (!value.vm || !wanted.has(value.vm)) continue;
        try {
          taps.push(tapName(key.slice(key.lastIndexOf("/") + 1)));
        } catch {
          // Not a MAC: no tap of that name.
        }
      }
      const last = [...page.items, ...page.unreadable].map((i) => i.key)
        .sort().at(-1);
      if (!page.more || !last) break;
      from = `${last}\0`;
    }
    this.#memo = { ids: key, taps };
    return taps;
  }
}
