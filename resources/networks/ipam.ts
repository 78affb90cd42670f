/**
 * Address management of networks: the VXLAN ids (`network.vniMin..vniMax`)
 * and the IPv6 /64s of `network.pool` that networks take. A value in use
 * has its `ipam/vni/<vni>` or `ipam/prefix/<prefix>` key; a network takes
 * it with an `ifAbsent` compare in the transaction that writes the network
 * ({@linkcode takeIpam}), so two creates never get the same one, and frees
 * it in the one that deletes it ({@linkcode releaseIpam}). The MACs and
 * IPv4 addresses of NICs are the NIC ledger's (nics.ts).
 *
 * @example
 * ```ts
 * const vni = await freeVni(store, config.network, 0); // the lowest free
 * const prefix = await freePrefix(store, config.network, 0);
 * ```
 */
import type { Config } from "../../core/config.ts";
import { keys } from "../../core/keys.ts";
import { nthPrefix, prefixCount } from "../../core/netaddr.ts";
import type { Network } from "../../core/schemas.ts";
import type { Store, Txn } from "../../core/store.ts";

/** The VNI range and the pool networks are given values from. */
export type IpamConfig = Pick<Config["network"], "vniMin" | "vniMax" | "pool">;

/**
 * Which free value try `attempt` takes: the lowest at first; after lost
 * races one of the lowest few at random, so concurrent creates spread out.
 */
export function skipOf(attempt: number): number {
  return Math.floor(Math.random() * Math.min(2 * attempt, 16));
}

/**
 * The `skip`th lowest VNI not in use (the highest free one when fewer
 * are free), or null when none is.
 */
export function freeVni(
  store: Store,
  net: IpamConfig,
  skip: number,
): Promise<number | null> {
  return nthFree(
    store,
    keys.ipamVnis,
    range(net.vniMin, net.vniMax),
    keys.ipamVni,
    skip,
  );
}

/**
 * The `skip`th first /64 of the pool not in use (the last free one when
 * fewer are free), or null when none is.
 */
export function freePrefix(
  store: Store,
  net: IpamConfig,
  skip: number,
): Promise<string | null> {
  return nthFree(
    store,
    keys.ipamPrefixes,
    prefixesOf(net.pool),
    keys.ipamPrefix,
    skip,
  );
}

/**
 * Adds to `txn` the taking of network `doc`'s /64 and VNI (if it has
 * one): each compared absent, so a lost race fails the transaction.
 */
export function takeIpam(txn: Txn, doc: Network): Txn {
  const entry = { network: doc.id };
  if (doc.vni !== undefined) {
    txn.ifAbsent(keys.ipamVni(doc.vni)).put(keys.ipamVni(doc.vni), entry);
  }
  return txn.ifAbsent(keys.ipamPrefix(doc.prefix))
    .put(keys.ipamPrefix(doc.prefix), entry);
}

/** Adds to `txn` the release of network `doc`'s /64 and VNI. */
export function releaseIpam(txn: Txn, doc: Network): Txn {
  txn.delete(keys.ipamPrefix(doc.prefix));
  if (doc.vni !== undefined) txn.delete(keys.ipamVni(doc.vni));
  return txn;
}

/**
 * The `skip`th of `candidates` whose key (`keyOf`, under `prefix`) is not
 * taken yet; the last free one when fewer are free; null when none is.
 */
async function nthFree<T>(
  store: Store,
  prefix: string,
  candidates: Iterable<T>,
  keyOf: (value: T) => string,
  skip: number,
): Promise<T | null> {
  const used = new Set(await store.keys(prefix));
  let found: T | null = null;
  for (const value of candidates) {
    if (used.has(keyOf(value))) continue;
    found = value;
    if (skip-- <= 0) break;
  }
  return found;
}

function* range(from: number, to: number): Generator<number> {
  for (let i = from; i <= to; i++) yield i;
}

function* prefixesOf(pool: string): Generator<string> {
  const n = prefixCount(pool);
  for (let i = 0; i < n; i++) yield nthPrefix(pool, i);
}
