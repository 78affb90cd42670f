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
 * It reads only this host's part: its VMs from the watched cache
 * (workers/host_vms.ts), the networks they use by key and the membership
 * keys from a watch (workers/net_docs.ts). Syncs run one at a time and are
 * driven by changes: a change of one of this host's VMs' ports, a
 * membership change of another host in a network used here, `sync()` from
 * a task (it reads the VM it names and the networks again first) or
 * `kick()`. A timer syncs every `INTERVAL_MS` from what is kept, to repair
 * drift on the host, and every `REPAIR_MS` this host's VMs and networks
 * are read again by key. After a sync, rising port filter counters are
 * written into the VMs' status (workers/spoof_drops.ts).
 *
 * @example
 * ```ts
 * const net = new HostNet({ store, host: "h1", driver, underlay, lease: () => lease, log, vms });
 * await net.sync();
 * ```
 */
import type { Logger } from "../core/log.ts";
import type { Vm } from "../core/schemas.ts";
import type { Kv, Store } from "../core/store.ts";
import { sleep } from "../core/watch.ts";
import { type NetDriver, nicTapName } from "../drivers/net/mod.ts";
import type { HostNetState, Underlay } from "../drivers/net/types.ts";
import { type HostNetwork, PermanentError } from "../tasks/context.ts";
import type { HostVms } from "./host_vms.ts";
import type { PortOwners } from "./metadata/service.ts";
import { NetDocs } from "./net_docs.ts";
import { type Member, writeMembership } from "./net_membership.ts";
import { PORT_PHASES, wantedState } from "./net_state.ts";
import { SpoofDrops } from "./spoof_drops.ts";
import { UnreadableTaps } from "./unreadable_taps.ts";

export {
  type Member,
  MEMBERSHIP_BATCH,
  writeMembership,
} from "./net_membership.ts";
export { networkSpec, wantedState } from "./net_state.ts";

/** Drift repair on the host, from what is kept (no etcd reads). */
const INTERVAL_MS = 10_000;
/** This host's VMs and networks are read again by key this often. */
export const REPAIR_MS = 300_000;

export interface HostNetOptions {
  store: Store;
  host: string;
  driver: NetDriver;
  underlay: Underlay | null;
  /** The worker's current lease (membership keys are bound to it). */
  lease: () => string | undefined;
  log: Logger;
  /** This host's VMs, kept from a watch. */
  vms: HostVms;
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

/** What this host's ports depend on in a VM document ("" when none). */
function portsOf(vm: Vm | undefined): string {
  return vm && PORT_PHASES.has(vm.status.phase) ? JSON.stringify(vm.nics) : "";
}

export class HostNet implements HostNetwork {
  readonly #o: HostNetOptions;
  readonly #docs: NetDocs;
  #running: Promise<unknown> = Promise.resolve();
  /** `run()`'s signal: it, not a caller's, aborts a shared sync. */
  #life?: AbortSignal;
  #queued: Promise<SkippedPort[]> | null = null;
  /** What the queued sync reads again: the networks, these VMs. */
  #fresh = false;
  readonly #refresh = new Set<string>();
  /** Networks the last sync used here (membership changes there matter). */
  #used = new Set<string>();
  /** The ports the last sync left out, to log only when that changes. */
  #skipped = "";
  readonly #drops: SpoofDrops;
  readonly #unreadable: UnreadableTaps;
  #state?: HostNetState;

  constructor(opts: HostNetOptions) {
    this.#o = opts;
    this.#docs = new NetDocs({ store: opts.store, log: opts.log });
    this.#unreadable = new UnreadableTaps(opts.store);
    this.#drops = new SpoofDrops({
      store: opts.store,
      host: opts.host,
      driver: opts.driver,
      log: opts.log,
      minIntervalMs: opts.spoofDropsIntervalMs,
    });
  }

  /** What the last sync asked the driver for (undefined before one). */
  get state(): HostNetState | undefined {
    return this.#state;
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
   * Syncs now, after a sync in progress, reading the networks used here
   * (and VM `vm`) again first; concurrent callers share the one queued
   * sync. A port that cannot be set up (a bad address, its public bridge
   * missing here, a tap that does not come up, rules the kernel refuses) is
   * left out and logged; the sync fails only for the caller that names its
   * VM (`vm`), giving the reason: a PermanentError when the port itself is
   * bad, an Error (the task retries) when a command failed. A caller's
   * `signal` ends only its own wait (its abort reason is thrown): the sync
   * goes on for the others.
   */
  async sync(opts: { signal?: AbortSignal; vm?: string } = {}): Promise<void> {
    await this.#sync(opts, true);
  }

  async #sync(
    opts: { signal?: AbortSignal; vm?: string },
    fresh: boolean,
  ): Promise<void> {
    this.#fresh ||= fresh;
    if (opts.vm) this.#refresh.add(opts.vm);
    if (!this.#queued) {
      const next = this.#running.catch(() => {}).then(() => {
        this.#queued = null;
        return this.#syncOnce(this.#life);
      });
      this.#queued = next;
      this.#running = next;
    }
    const skipped = await waitOr(this.#queued, opts.signal);
    const bad = skipped.filter((p) => p.vm === opts.vm);
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

  /**
   * Asks for a sync soon from what is kept (networks not read before are
   * read); failures are logged, not thrown.
   */
  kick(): void {
    this.#sync({}, false).catch((err) =>
      this.#o.log.warn("network sync failed", { error: String(err) })
    );
  }

  /**
   * Follows this host's VMs and the membership keys, repairs drift and
   * reads this host's part again now and then, until `signal` aborts.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { vms, host } = this.#o;
    this.#life = signal;
    const off = vms.onChange((_, before, after) => {
      if (portsOf(before?.value) !== portsOf(after?.value)) this.kick();
    });
    const every = async (ms: number, f: () => Promise<void> | void) => {
      while (!signal.aborted) {
        await sleep(ms, signal);
        if (!signal.aborted) await f();
      }
    };
    const timers = Promise.all([
      every(INTERVAL_MS, () => this.kick()),
      every(REPAIR_MS, () => this.#repair()),
    ]);
    try {
      await this.#docs.watch(signal, (m) => {
        // Other hosts' changes in networks used here matter (unicast peers).
        if (!m || (m.host !== host && this.#used.has(m.network))) this.kick();
      });
    } finally {
      off();
      await timers;
      // A kicked sync still running ends before run() does.
      await this.#running.catch(() => {});
    }
  }

  /** Reads this host's VMs and networks again by key, then syncs. */
  async #repair(): Promise<void> {
    try {
      for (const vm of this.#o.vms.items()) {
        await this.#o.vms.refresh(vm.value.id);
      }
      await this.sync();
    } catch (err) {
      this.#o.log.warn("network repair failed", { error: String(err) });
    }
  }

  async #syncOnce(signal?: AbortSignal): Promise<SkippedPort[]> {
    const { host, driver, vms } = this.#o;
    const fresh = this.#fresh;
    const refresh = [...this.#refresh];
    this.#fresh = false;
    this.#refresh.clear();
    for (const id of refresh) await vms.refresh(id);
    const mine: Kv<Vm>[] = vms.items();
    const here = mine.filter((kv) => PORT_PHASES.has(kv.value.status.phase));
    const ids = new Set(
      here.flatMap((kv) => kv.value.nics.map((n) => n.network)),
    );
    const { nets, bad: badNets } = await this.#docs.networks(ids, fresh);
    const members = await this.#docs.members(ids);
    const want = wantedState(host, mine.map((kv) => kv.value), nets, members);
    this.#used = new Set([...want.networks.map((n) => n.id), ...badNets]);
    // A VM whose document cannot be read (e.g. written by a newer
    // release) may run here, and a NIC whose network's document cannot be
    // read may be in use: their ports stay as they are.
    const keep = [
      ...await this.#unreadable.of(vms.unreadableHere()),
      ...here.flatMap(({ value: vm }) =>
        vm.nics.filter((n) => badNets.has(n.network))
          .map((n) => nicTapName(vm.id, n))
      ),
    ];
    if (keep.length) want.keep = keep;
    await this.#membership(new Set(want.networks.map((n) => n.id)), members);
    const report = await driver.sync(want, { signal });
    this.#state = want;
    const nics = new Map(
      mine.flatMap(({ value: vm }) =>
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
    await this.#drops.report(mine, { signal }).catch((err) =>
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

/** `p`, or `signal`'s abort reason thrown once it aborts first (p goes on). */
function waitOr<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const stop = () => reject(signal.reason);
    if (signal.aborted) return stop();
    signal.addEventListener("abort", stop, { once: true });
    p.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", stop)
    );
  });
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
