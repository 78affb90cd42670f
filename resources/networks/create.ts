/**
 * Creating a network. A private network is a VXLAN segment: it gets the
 * lowest free VNI of `network.vniMin..vniMax`, the multicast group
 * `ff05::<vni hex>` and an IPv6 /64, the next free one of `network.pool`
 * unless an admin gives one. A public network (admins only) names a bridge
 * the hosts already have (`network.publicBridges`) and the /64 routed to
 * it. The VNI and the /64 are taken in the transaction that writes the
 * network (ipam.ts), so two creates never get the same. The network
 * counts against its owner's quota (resources/quotas/: 403 over it),
 * charged in the same transaction.
 *
 * @example
 * ```ts
 * const net = await createNetwork({ store, config }, who, { name: "lan", kind: "private" });
 * net.vni; // the lowest free VNI
 * ```
 */
import { defaultNetworkConfig } from "../../core/config.ts";
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
} from "../../core/errors.ts";
import { keys, newId } from "../../core/keys.ts";
import {
  canonicalPrefix6,
  multicastGroup,
  parsePrefix4,
  parsePrefix6,
} from "../../core/netaddr.ts";
import {
  IpamEntry,
  type Network,
  type NetworkCreateInput,
} from "../../core/schemas.ts";
import type { Caller, ResourceDeps } from "../deps.ts";
import { chargeFor, NETWORK_AMOUNTS } from "../quotas/mod.ts";
import { freePrefix, freeVni, skipOf, takeIpam } from "./ipam.ts";

/**
 * How often a create is retried after another create took its VNI or /64
 * or changed the owner's usage.
 */
const ATTEMPTS = 20;

/**
 * Creates a network for `who` from `input` (already schema-valid).
 * Throws ForbiddenError for what only admins may ask (public networks, a
 * chosen /64), InvalidError naming the field for input that breaks a rule
 * the schema cannot state, QuotaError over the owner's quota, ConflictError
 * when the pool or the VNI range is used up or the chosen /64 is taken.
 */
export async function createNetwork(
  { store, config }: ResourceDeps,
  who: Caller,
  input: NetworkCreateInput,
): Promise<Network> {
  const net = config.network ?? defaultNetworkConfig();
  const given = checkNetworkInput(who, input);
  for (let i = 0; i < ATTEMPTS; i++) {
    const now = new Date().toISOString();
    // Read first: a create of the owner committed meanwhile fails it.
    const charge = await chargeFor(
      { store, config },
      who.name,
      NETWORK_AMOUNTS,
    );
    const prefix = given ?? await freePrefix(store, net, skipOf(i));
    if (!prefix) {
      throw new ConflictError(
        `Cannot create network: the pool ${net.pool} has no free /64`,
      );
    }
    const doc: Network = {
      id: newId("net"),
      name: input.name,
      owner: who.name,
      kind: input.kind,
      prefix,
      ...(input.ipv4 ? { ipv4: input.ipv4 } : {}),
      ra: input.kind === "private",
      dhcp: { v6: input.dhcp?.v6 ?? false, v4: input.dhcp?.v4 ?? false },
      vms: [],
      createdAt: now,
    };
    if (input.kind === "private") {
      const vni = await freeVni(store, net, skipOf(i));
      if (vni === null) {
        throw new ConflictError(
          `Cannot create network: no free VNI in ${net.vniMin}..${net.vniMax}`,
        );
      }
      doc.vni = vni;
      doc.mode = input.mode ?? net.mode;
      doc.group = multicastGroup(vni);
    } else doc.bridge = input.bridge;
    const txn = takeIpam(store.txn().ifAbsent(keys.network(doc.id)), doc)
      .put(keys.network(doc.id), doc);
    if ((await charge.apply(txn).commit()).ok) return doc;
    if (given && await store.get(keys.ipamPrefix(given), IpamEntry)) {
      throw new ConflictError(
        `Cannot create network: prefix ${given} is already in use`,
      );
    }
  }
  throw new ConflictError(
    `Cannot create network: other creates took its VNI or prefix or changed its owner's usage ${ATTEMPTS} times; try again`,
  );
}

/**
 * Checks `input` beyond its schema for `who`; returns the admin-given /64
 * in canonical form, or undefined when the pool is to give one.
 */
export function checkNetworkInput(
  who: Caller,
  input: NetworkCreateInput,
): string | undefined {
  if (input.kind === "public") {
    if (!who.admin) {
      throw new ForbiddenError(
        `Cannot create a public network: ${who.name} is not an admin`,
      );
    }
    if (!input.bridge) {
      throw new InvalidError("bridge", "A public network needs a bridge");
    }
    if (!input.prefix) {
      throw new InvalidError(
        "prefix",
        "A public network needs its IPv6 /64 (prefix)",
      );
    }
    if (input.mode) {
      throw new InvalidError("mode", "mode is for private networks only");
    }
    if (input.dhcp?.v4 || input.dhcp?.v6) {
      throw new InvalidError(
        "dhcp",
        "DHCP is for private networks only: a public network's router serves it",
      );
    }
  } else if (input.bridge) {
    throw new InvalidError("bridge", "bridge is for public networks only");
  }
  let prefix: string | undefined;
  if (input.prefix !== undefined) {
    if (!who.admin) {
      throw new ForbiddenError(
        `Cannot choose a prefix: ${who.name} is not an admin`,
      );
    }
    try {
      if (parsePrefix6(input.prefix).length !== 64) {
        throw new TypeError(`${input.prefix} is not a /64`);
      }
      prefix = canonicalPrefix6(input.prefix);
    } catch (err) {
      throw new InvalidError(
        "prefix",
        `prefix must be an IPv6 /64: ${(err as Error).message}`,
      );
    }
  }
  if (input.ipv4 !== undefined) {
    try {
      parsePrefix4(input.ipv4);
    } catch (err) {
      throw new InvalidError("ipv4", (err as Error).message);
    }
  }
  if (input.dhcp?.v4 && !input.ipv4) {
    throw new InvalidError("dhcp.v4", "DHCPv4 needs an ipv4 subnet");
  }
  return prefix;
}
