/**
 * This host's `netmember/<network>/<host>` keys: which networks it has,
 * bound to the worker's lease, carrying the underlay address unicast VXLAN
 * peers send to (written by workers/net.ts after each sync).
 *
 * @example
 * ```ts
 * await writeMembership(store, { host: "h1", lease, wanted: new Set(["net-1"]), members });
 * ```
 */
import { keys } from "../core/keys.ts";
import type { NetMember } from "../core/schemas.ts";
import type { Store, Txn } from "../core/store.ts";

/** A `netmember/<network>/<host>` key as listed, with its lease. */
export interface Member {
  network: string;
  host: string;
  address?: string;
  lease: string;
}

/** Membership writes per transaction: etcd takes at most 128 operations. */
export const MEMBERSHIP_BATCH = 100;

/**
 * Writes `host`'s membership keys for `wanted` network ids (again when
 * `members`, the listing, shows one bound to an earlier lease or naming
 * another address) and deletes its others, in transactions of at most
 * `MEMBERSHIP_BATCH` writes however many networks the host has. Returns
 * how many keys it wrote or deleted.
 */
export async function writeMembership(
  store: Store,
  o: {
    host: string;
    lease: string;
    address?: string;
    wanted: Set<string>;
    members: Member[];
  },
): Promise<number> {
  const mine = new Map(
    o.members.filter((m) => m.host === o.host).map((m) => [m.network, m]),
  );
  const value: NetMember = o.address ? { address: o.address } : {};
  const writes: ((txn: Txn) => Txn)[] = [];
  for (const id of o.wanted) {
    const m = mine.get(id);
    if (m?.lease === o.lease && m.address === o.address) continue;
    writes.push((t) =>
      t.put(keys.netMember(id, o.host), value, { lease: o.lease })
    );
  }
  for (const id of mine.keys()) {
    if (!o.wanted.has(id)) {
      writes.push((t) => t.delete(keys.netMember(id, o.host)));
    }
  }
  for (let i = 0; i < writes.length; i += MEMBERSHIP_BATCH) {
    const txn = store.txn();
    for (const w of writes.slice(i, i + MEMBERSHIP_BATCH)) w(txn);
    await txn.commit();
  }
  return writes.length;
}
