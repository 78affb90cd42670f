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
 * After a sync, rising port filter counters are written into the VMs'
 * status (workers/spoof_drops.ts).
 *
 * @example
 * ```ts
 * const net = new HostNet({ store, host: "h1", driver, underlay, lease: () => lease, log });
 * await net.sync();
 * ```
 */
import { idOf, keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { NetMember, Network, Vm } from "../core/schemas.ts";
import type { Store, Txn } from "../core/store.ts";
import { sleep, watchPrefix } from "../core/watch.ts";
import {
  legacyTapName,
  type NetDriver,
  nicTapName,
} from "../drivers/net/mod.ts";
import type {
  HostNetState,
  NetworkSpec,
  PortSpec,
  Underlay,
} from "../drivers/net/types.ts";
import { type HostNetwork, PermanentError } from "../tasks/context.ts";
import type { PortOwners } from "./metadata/service.ts";
import { SpoofDrops } from "./spoof_drops.ts";
import { unreadableTaps } from "./unreadable_taps.ts";

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
  /** Least time between two writes of a VM's `status.spoofDrops`. */
  spoofDropsIntervalMs?: number;
  /**
   * Told the synced state after each sync, with each port's VM
   * (workers/metadata/service.ts); ports the driver left out are not in it.
   */
  metadata?: {
    update(state: HostNetState, owners: PortOwners): Promise<void>;
  };
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
        name: nicTapName(vm.id, nic),
        formerName: legacyTapName(vm.id, nic.slot),
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
  #running: Promise<unknown> = Promise.resolve();
  #queued: Promise<SkippedPort[]> | null = null;
  /** The ports the last sync left out, to log only when that changes. */
  #skipped = "";
  readonly #drops: SpoofDrops;

  constructor(opts: HostNetOptions) {
    this.#o = opts;
    this.#drops = new SpoofDrops({
      store: opts.store,
      host: opts.host,
      driver: opts.driver,
      log: opts.log,
      minIntervalMs: opts.spoofDropsIntervalMs,
    });
  }

  port(vm: string, nic: { slot: number; mac: string }): string {
    return nicTapName(vm, nic);
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
   * A port that cannot be set up (a bad address, its public bridge missing
   * here, a tap that does not come up, rules the kernel refuses) is left
   * out and logged; the sync fails only for the caller that names its VM
   * (`vm`), giving the reason: a PermanentError when the port itself is
   * bad, an Error (the task retries) when a command failed.
   */
  async sync(opts: { signal?: AbortSignal; vm?: string } = {}): Promise<void> {
    if (!this.#queued) {
      const next = this.#running.catch(() => {}).then(() => {
        this.#queued = null;
        return this.#syncOnce(opts.signal);
      });
      this.#queued = next;
      this.#running = next;
    }
    const bad = (await this.#queued).filter((p) => p.vm === opts.vm);
    if (bad.length) {
      const msg =
        `Cannot set up the ports of VM ${opts.vm} on host ${this.#o.host}: ${
          bad.map((p) => `NIC ${p.slot}: ${p.reason}`).join("; ")
        }`;
      throw bad.every((p) => p.retry)
        ? new Error(msg)
        : new PermanentError(msg);
    }
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

  async #syncOnce(signal?: AbortSignal): Promise<SkippedPort[]> {
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
    // A VM whose document cannot be read (e.g. written by a newer
    // release) may run here, and a NIC whose network's document cannot be
    // read may be in use: their ports stay as they are.
    const badNets = new Set(nets.unreadable.map(({ key }) => idOf(key)));
    const keep = [
      ...await unreadableTaps(
        store,
        vms.unreadable.map(({ key }) => idOf(key)),
      ),
      ...vms.items.flatMap(({ value: vm }) =>
        vm.status.host === host && PORT_PHASES.has(vm.status.phase)
          ? vm.nics.filter((n) => badNets.has(n.network))
            .map((n) => nicTapName(vm.id, n))
          : []
      ),
    ];
    if (keep.length) want.keep = keep;
    await this.#membership(new Set(want.networks.map((n) => n.id)), memberList);
    const report = await driver.sync(want, { signal });
    const nics = new Map(
      vms.items.flatMap(({ value: vm }) =>
        vm.nics.map((
          n,
        ) => [nicTapName(vm.id, n), { vm: vm.id, slot: n.slot }])
      ),
    );
    const skipped = (report.skipped ?? []).flatMap((p) => {
      const nic = nics.get(p.port);
      return nic ? [{ ...p, ...nic }] : [];
    });
    const seen = JSON.stringify(skipped);
    if (seen !== this.#skipped && skipped.length) {
      this.#o.log.warn("network ports left out of the sync", {
        ports: skipped,
      });
    }
    this.#skipped = seen;
    const left = new Set(skipped.map((p) => p.port));
    await this.#o.metadata?.update(
      { ...want, ports: want.ports.filter((p) => !left.has(p.name)) },
      nics,
    ).catch((err) =>
      this.#o.log.warn("cannot update the metadata service", {
        error: String(err),
      })
    );
    await this.#drops.report(vms.items, { signal }).catch((err) =>
      this.#o.log.warn("cannot report port filter drops", {
        error: String(err),
      })
    );
    return skipped;
  }

  async #membership(
    wanted: Set<string>,
    members: Member[],
  ): Promise<void> {
    const lease = this.#o.lease();
    if (!lease) return;
    await writeMembership(this.#o.store, {
      host: this.#o.host,
      lease,
      address: this.#o.underlay?.address,
      wanted,
      members,
    });
  }
}

/** A port the driver left out (drivers/net `SyncReport.skipped`), by NIC. */
interface SkippedPort {
  port: string;
  network: string;
  reason: string;
  retry?: boolean;
  vm: string;
  slot: number;
}

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
