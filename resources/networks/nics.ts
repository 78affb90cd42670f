/**
 * The NIC ledger of networks, shared by the VM resource (resources/vms/)
 * and the task handlers that drop NICs (tasks/): planning new NICs of a
 * VM (slot, unique MAC, the IPv6 address known in advance, an IPv4
 * address on legacy networks) and releasing them again. Both add their
 * writes to a caller's transaction, so a NIC, its addresses and the VM's
 * member key in the network (`netvm/<network>/<vm>`) change together or
 * not at all. A NIC add compares the network document's revision but does
 * not write it: adds to one network do not contend with each other, and a
 * network delete (delete.ts), which compares that no member key is left,
 * cannot interleave with one.
 *
 * @example
 * ```ts
 * const plan = await planNics(store, who, vm.id, ["net-1"], vm.nics);
 * const txn = plan.apply(store.txn().put(keys.vm(vm.id), { ...vm, nics: plan.nics }));
 * ```
 */
import { ConflictError, InvalidError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { eui64, nthIpv4, parsePrefix4, randomMac } from "../../core/netaddr.ts";
import { Host, MAX_NICS, Network, type Nic } from "../../core/schemas.ts";
import type { Kv, Store, Txn } from "../../core/store.ts";
import type { Caller } from "../deps.ts";

/**
 * Whether `who` may attach VMs to `net`: public networks anyone, private
 * ones only their owner (or an admin).
 */
export function canUse(who: Caller, net: Network): boolean {
  return net.kind === "public" || who.admin || net.owner === who.name;
}

export interface NicPlan {
  /** Every NIC of the VM: the existing ones, then the new ones. */
  nics: Nic[];
  /** The new NICs only. */
  added: Nic[];
  /** Adds the compares and writes that take the addresses. */
  apply(txn: Txn): Txn;
  /** False when a network changed since planning: plan again. */
  fresh(): Promise<boolean>;
}

/**
 * Plans one new NIC per network id for VM `vm` next to `existing`. Throws
 * InvalidError naming `fieldOf(i)` for a network that does not exist or is
 * not `who`'s, ConflictError when slots or IPv4 addresses run out.
 */
export async function planNics(
  store: Store,
  who: Caller,
  vm: string,
  networkIds: string[],
  existing: Nic[] = [],
  fieldOf = (i: number) => `networks.${i}`,
): Promise<NicPlan> {
  const nets: Kv<Network>[] = [];
  for (const [i, id] of networkIds.entries()) {
    const net = await store.get(keys.network(id), Network);
    if (!net || !canUse(who, net.value)) {
      throw new InvalidError(
        fieldOf(i),
        `Cannot find network ${id}`,
      );
    }
    nets.push(net);
  }
  const used = new Set(existing.map((n) => n.slot));
  const added: Nic[] = [];
  const v4s = new Map<string, string>();
  for (const net of nets) {
    let slot = 0;
    while (used.has(slot)) slot++;
    if (slot >= MAX_NICS) {
      throw new ConflictError(
        `Cannot attach network ${net.value.id}: VM ${vm} has ${MAX_NICS} NICs already`,
      );
    }
    used.add(slot);
    const mac = randomMac();
    const nic: Nic = {
      slot,
      network: net.value.id,
      mac,
      ipv6: eui64(net.value.prefix, mac),
      ...(net.value.bridge ? { bridge: net.value.bridge } : {}),
      state: "attached",
    };
    if (net.value.ipv4) {
      nic.ipv4 = await freeIpv4(store, net.value);
      v4s.set(net.value.id, nic.ipv4);
    }
    added.push(nic);
  }
  return {
    nics: [...existing, ...added],
    added,
    apply(txn: Txn): Txn {
      for (const net of nets) {
        txn.ifModRevision(net.key, net.modRevision);
      }
      for (const id of new Set(nets.map((n) => n.value.id))) {
        txn.put(keys.netVm(id, vm), {});
      }
      for (const nic of added) {
        const entry = { network: nic.network, vm, slot: nic.slot };
        txn.ifAbsent(keys.ipamMac(nic.mac)).put(keys.ipamMac(nic.mac), entry);
        if (nic.ipv4) {
          const k = keys.ipamV4(nic.network, nic.ipv4);
          txn.ifAbsent(k).put(k, entry);
        }
      }
      return txn;
    },
    async fresh(): Promise<boolean> {
      for (const net of nets) {
        const now = await store.get(net.key, Network);
        if (now?.modRevision !== net.modRevision) return false;
      }
      return true;
    },
  };
}

/**
 * Checks that `host`, where VM `vm` runs or will start again (stopped VMs
 * keep their host), has the public bridge of every NIC in `added`, as its
 * host document reports them (what placement compares at create). A NIC
 * whose bridge is missing there could never come up. Throws ConflictError
 * naming the host, network and bridge; returns the compare on the host
 * document to add to the caller's transaction (none without a document).
 */
export async function checkHostBridges(
  store: Store,
  host: string,
  vm: string,
  added: Nic[],
): Promise<(txn: Txn) => Txn> {
  const bridged = added.filter((n) => n.bridge);
  if (!bridged.length) return (txn) => txn;
  const doc = await store.get(keys.host(host), Host);
  if (!doc) return (txn) => txn;
  const have = new Set(doc.value.publicBridges ?? []);
  const missing = bridged.find((n) => !have.has(n.bridge!));
  if (missing) {
    throw new ConflictError(
      `Cannot attach network ${missing.network} to VM ${vm}: its host ${host} has no bridge ${missing.bridge} (network.publicBridges there: ${
        have.size ? [...have].join(", ") : "none"
      })`,
    );
  }
  return (txn) => txn.ifModRevision(doc.key, doc.modRevision);
}

/** The lowest IPv4 address of the network's subnet not taken yet. */
async function freeIpv4(store: Store, net: Network): Promise<string> {
  const subnet = net.ipv4!;
  parsePrefix4(subnet);
  const prefix = keys.ipamV4s(net.id);
  const taken = new Set(
    (await store.keys(prefix)).map((k) => k.slice(prefix.length)),
  );
  for (let i = 0;; i++) {
    const addr = nthIpv4(subnet, i);
    if (addr === null) {
      throw new ConflictError(
        `Cannot attach network ${net.id}: no free IPv4 address left in ${subnet}`,
      );
    }
    if (!taken.has(addr)) return addr;
  }
}

/**
 * Adds to `txn` the release of `removed` NICs of VM `vm` (keeping `kept`):
 * their MAC and IPv4 entries, and the VM's member key in each network it
 * no longer has a NIC in. A network written by an older version may still
 * list the VM in its `vms`: it is taken out there too, comparing the
 * network's revision (so these lists only shrink).
 */
export async function releaseNics(
  store: Store,
  txn: Txn,
  vm: string,
  removed: Nic[],
  kept: Nic[] = [],
): Promise<Txn> {
  for (const nic of removed) {
    txn.delete(keys.ipamMac(nic.mac));
    if (nic.ipv4) txn.delete(keys.ipamV4(nic.network, nic.ipv4));
  }
  const left = new Set(kept.map((n) => n.network));
  const gone = new Set(
    removed.map((n) => n.network).filter((id) => !left.has(id)),
  );
  for (const id of gone) {
    txn.delete(keys.netVm(id, vm));
    const net = await store.get(keys.network(id), Network);
    if (!net?.value.vms.includes(vm)) continue;
    txn.ifModRevision(net.key, net.modRevision).put(net.key, {
      ...net.value,
      vms: net.value.vms.filter((v) => v !== vm),
    });
  }
  return txn;
}
