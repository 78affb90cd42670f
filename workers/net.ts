/**
 * This host's networking, driven from etcd: which VMs run here (or are
 * starting, stopping or being deleted here), their NICs and networks. A
 * sync reads that, records which networks this host has
 * (`netmember/<network>/<host>`, bound to the worker's lease, carrying the
 * underlay address unicast VXLAN peers send to), and hands the wanted
 * state to the network driver (drivers/net), which converges bridges,
 * VXLANs, ports, nftables rules and router advertisements and removes
 * what is no longer wanted.
 *
 * Syncs run one at a time; `kick()` asks for one soon (after a task, on a
 * membership change) and a timer syncs every `INTERVAL_MS` to repair drift.
 *
 * @example
 * ```ts
 * const net = new HostNet({ store, host: "h1", driver, underlay, lease: () => lease, log });
 * await net.sync();
 * ```
 */
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { NetMember, Network, Vm } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { sleep, watchPrefix } from "../core/watch.ts";
import { type NetDriver, tapName } from "../drivers/net/mod.ts";
import type {
  HostNetState,
  NetworkSpec,
  PortSpec,
  Underlay,
} from "../drivers/net/types.ts";
import type { HostNetwork } from "../tasks/context.ts";

/** VM phases in which its process (and so its ports) may exist here. */
const PORT_PHASES = new Set([
  "scheduled",
  "starting",
  "running",
  "stopping",
  "deleting",
]);
/** Repair interval. */
const INTERVAL_MS = 10_000;

export interface HostNetOptions {
  store: Store;
  host: string;
  driver: NetDriver;
  underlay: Underlay | null;
  /** The worker's current lease (membership keys are bound to it). */
  lease: () => string | undefined;
  log: Logger;
}

/** The driver's view of a network document. */
export function networkSpec(n: Network): NetworkSpec {
  return {
    id: n.id,
    kind: n.kind,
    prefix: n.prefix,
    ...(n.ipv4 ? { ipv4: n.ipv4 } : {}),
    ...(n.vni !== undefined ? { vni: n.vni } : {}),
    ...(n.mode ? { mode: n.mode } : {}),
    ...(n.group ? { group: n.group } : {}),
    ...(n.bridge ? { bridge: n.bridge } : {}),
    ra: n.ra,
    dhcp: n.dhcp,
  };
}

/**
 * The wanted state of `host` from the documents: a port for every NIC of
 * every VM whose process may run there, the networks of those ports, and
 * the unicast peers (other members' underlay addresses).
 */
export function wantedState(
  host: string,
  vms: Vm[],
  networks: Network[],
  members: { network: string; host: string; address?: string }[],
): HostNetState {
  const byId = new Map(networks.map((n) => [n.id, n]));
  const ports: PortSpec[] = [];
  const used = new Map<string, Network>();
  for (const vm of vms) {
    if (vm.status.host !== host || !PORT_PHASES.has(vm.status.phase)) continue;
    for (const nic of vm.nics) {
      const net = byId.get(nic.network);
      if (!net) continue;
      used.set(net.id, net);
      ports.push({
        name: tapName(vm.id, nic.slot),
        network: net.id,
        mac: nic.mac,
        ipv6: nic.ipv6,
        ...(nic.ipv4 ? { ipv4: nic.ipv4 } : {}),
      });
    }
  }
  const peers: Record<string, string[]> = {};
  for (const net of used.values()) {
    if (net.kind !== "private" || net.mode !== "unicast") continue;
    peers[net.id] = members
      .filter((m) => m.network === net.id && m.host !== host && m.address)
      .map((m) => m.address!)
      .sort();
  }
  return {
    networks: [...used.values()].map(networkSpec),
    ports: ports.sort((a, b) => a.name.localeCompare(b.name)),
    peers,
  };
}

export class HostNet implements HostNetwork {
  readonly #o: HostNetOptions;
  #running: Promise<void> = Promise.resolve();
  #queued: Promise<void> | null = null;

  constructor(opts: HostNetOptions) {
    this.#o = opts;
  }

  port(vm: string, slot: number): string {
    return tapName(vm, slot);
  }

  async mtu(port: string): Promise<number | undefined> {
    try {
      return Number(await Deno.readTextFile(`/sys/class/net/${port}/mtu`));
    } catch {
      return undefined;
    }
  }

  /**
   * Syncs now, after a sync in progress; concurrent callers share the one
   * queued sync (it reads etcd when it starts, so it sees their changes).
   */
  sync(opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (!this.#queued) {
      const next = this.#running.catch(() => {}).then(() => {
        this.#queued = null;
        return this.#syncOnce(opts.signal);
      });
      this.#queued = next;
      this.#running = next;
    }
    return this.#queued;
  }

  /** Asks for a sync soon; failures are logged, not thrown. */
  kick(): void {
    this.sync().catch((err) =>
      this.#o.log.warn("network sync failed", { error: String(err) })
    );
  }

  /** Repairs drift and follows membership changes until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { store, log } = this.#o;
    const timer = (async () => {
      while (!signal.aborted) {
        await sleep(INTERVAL_MS, signal);
        if (!signal.aborted) this.kick();
      }
    })();
    await watchPrefix(store, keys.netMembers, {
      signal,
      log,
      onReset: () => this.kick(),
      onEvent: (ev) => {
        // Only other hosts' changes matter (unicast peers).
        if (!ev.key.endsWith(`/${this.#o.host}`)) this.kick();
      },
    });
    await timer;
  }

  async #syncOnce(signal?: AbortSignal): Promise<void> {
    const { store, host, driver } = this.#o;
    const [vms, nets, members] = await Promise.all([
      store.list(keys.vms, Vm),
      store.list(keys.networks, Network),
      store.list(keys.netMembers, NetMember),
    ]);
    const memberList = members.items.map((kv) => {
      const [network, h] = kv.key.slice(keys.netMembers.length).split("/");
      return { network, host: h, address: kv.value.address, lease: kv.lease };
    });
    const want = wantedState(
      host,
      vms.items.map((kv) => kv.value),
      nets.items.map((kv) => kv.value),
      memberList,
    );
    await this.#membership(new Set(want.networks.map((n) => n.id)), memberList);
    await driver.sync(want, { signal });
  }

  /**
   * Writes this host's membership keys for `wanted` (again when bound to an
   * earlier incarnation's lease or naming another address), deletes the
   * others.
   */
  async #membership(
    wanted: Set<string>,
    members: {
      network: string;
      host: string;
      address?: string;
      lease: string;
    }[],
  ): Promise<void> {
    const { store, host } = this.#o;
    const lease = this.#o.lease();
    if (!lease) return;
    const mine = new Map(
      members.filter((m) => m.host === host).map((m) => [m.network, m]),
    );
    const address = this.#o.underlay?.address;
    const value: NetMember = address ? { address } : {};
    const txn = store.txn();
    let writes = 0;
    for (const id of wanted) {
      const m = mine.get(id);
      if (m?.lease === lease && m.address === address) continue;
      txn.put(keys.netMember(id, host), value, { lease });
      writes++;
    }
    for (const id of mine.keys()) {
      if (wanted.has(id)) continue;
      txn.delete(keys.netMember(id, host));
      writes++;
    }
    if (writes) await txn.commit();
  }
}
