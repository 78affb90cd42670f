/**
 * Reading networks as a caller may see them: public networks and the
 * caller's own (all for an admin); the VM ids of a network only for its
 * owner.
 *
 * @example
 * ```ts
 * const items = await listNetworks(store, who);
 * const net = await showNetwork(store, who, "net-1"); // NotFoundError if hidden
 * ```
 */
import { NotFoundError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { Network } from "../../core/schemas.ts";
import type { Kv, Store } from "../../core/store.ts";
import { type Caller, canSee } from "../deps.ts";

/** What a caller sees of a network: others' VM ids only for its owner. */
export function networkView(who: Caller, net: Network): Network {
  return canSee(who, net.owner) ? net : { ...net, vms: [] };
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
): Promise<Network[]> {
  const { items } = await store.list(keys.networks, Network);
  return items.map((kv) => kv.value)
    .filter((n) => n.kind === "public" || canSee(who, n.owner))
    .map((n) => networkView(who, n));
}

/** One network as `who` sees it; NotFoundError when it may not. */
export async function showNetwork(
  store: Store,
  who: Caller,
  id: string,
): Promise<Network> {
  return networkView(who, (await readNetwork(store, who, id)).value);
}
