/**
 * Reading networks as a caller may see them: public networks and the
 * caller's own (all for an admin); the VMs of a network (the first
 * `VMS_SHOWN` ids and their count, from its member keys `netvm/<network>/`
 * and the `vms` an older version wrote) only for its owner.
 *
 * @example
 * ```ts
 * const items = await listNetworks(store, who);
 * const net = await showNetwork(store, who, "net-1"); // NotFoundError if hidden
 * net.vmCount; // 2, for its owner
 * ```
 */
import { NotFoundError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { Network } from "../../core/schemas.ts";
import type { Kv, Store } from "../../core/store.ts";
import { type Caller, canSee } from "../deps.ts";

/** How many VM ids of a network a caller is shown at most. */
export const VMS_SHOWN = 100;

/** How many networks a listing reads the members of at once. */
const BATCH = 16;

/**
 * A network as a caller sees it: `vms` holds at most `VMS_SHOWN` of its VMs,
 * `vmCount` counts them all; both only for its owner (`vms` empty and no
 * count for others).
 */
export type NetworkView = Network & { vmCount?: number };

/** What `who` sees of `net`: its VMs only when `who` owns it. */
async function networkView(
  store: Store,
  who: Caller,
  net: Network,
): Promise<NetworkView> {
  if (!canSee(who, net.owner)) return { ...net, vms: [] };
  const prefix = keys.netVmsOf(net.id);
  const [members, count] = await Promise.all([
    store.keys(prefix, VMS_SHOWN),
    store.count(prefix),
  ]);
  // An older version's `vms` and the member keys name disjoint VMs: a NIC
  // is recorded in one of them.
  const vms = [...net.vms, ...members.map((k) => k.slice(prefix.length))];
  return {
    ...net,
    vms: vms.slice(0, VMS_SHOWN),
    vmCount: net.vms.length + count,
  };
}

/**
 * Reads a network `who` may see (public, or its own); throws
 * NotFoundError otherwise, also when it exists.
 */
export async function readNetwork(
  store: Store,
  who: Caller,
  id: string,
): Promise<Kv<Network>> {
  const net = await store.get(keys.network(id), Network);
  if (!net || !(net.value.kind === "public" || canSee(who, net.value.owner))) {
    throw new NotFoundError("network", id);
  }
  return net;
}

/** The networks `who` may see, as it sees them. */
export async function listNetworks(
  store: Store,
  who: Caller,
): Promise<NetworkView[]> {
  const { items } = await store.list(keys.networks, Network);
  const seen = items.map((kv) => kv.value)
    .filter((n) => n.kind === "public" || canSee(who, n.owner));
  const out: NetworkView[] = [];
  for (let i = 0; i < seen.length; i += BATCH) {
    out.push(
      ...await Promise.all(
        seen.slice(i, i + BATCH).map((n) => networkView(store, who, n)),
      ),
    );
  }
  return out;
}

/** One network as `who` sees it; NotFoundError when it may not. */
export async function showNetwork(
  store: Store,
  who: Caller,
  id: string,
): Promise<NetworkView> {
  return await networkView(
    store,
    who,
    (await readNetwork(store, who, id)).value,
  );
}
