/**
 * The taps of VMs whose documents this worker cannot read (e.g. written by
 * a newer release): such a VM may run here, so a network sync keeps its
 * ports (`HostNetState.keep`). Taps are named by the NIC's MAC
 * (drivers/net/names.ts), which an unreadable document does not give: the
 * `ipam/mac/<mac>` entries name each MAC's VM and slot.
 *
 * @example
 * ```ts
 * const keep = await unreadableTaps(store, ["vm-7"]); // ["uct02c10d...", "uct1a2b3c4d0", ...]
 * ```
 *
 * @module
 */
import { keys } from "../core/keys.ts";
import { IpamEntry, MAX_NICS } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { legacyTapName, tapName } from "../drivers/net/names.ts";

/**
 * Every tap VMs `ids` may have: by their MACs' ipam entries, and every
 * slot's legacy name. Lists `ipam/mac/` only when `ids` is not empty.
 */
export async function unreadableTaps(
  store: Store,
  ids: string[],
): Promise<string[]> {
  if (!ids.length) return [];
  const wanted = new Set(ids);
  const prefix = keys.ipamMac("");
  const { items } = await store.list(prefix, IpamEntry);
  const taps = items.flatMap(({ key, value }) => {
    if (!value.vm || !wanted.has(value.vm)) return [];
    try {
      return [tapName(key.slice(key.lastIndexOf("/") + 1))];
    } catch {
      return [];
    }
  });
  for (const id of ids) {
    for (let slot = 0; slot < MAX_NICS; slot++) {
      taps.push(legacyTapName(id, slot));
    }
  }
  return taps;
}
