/**
 * The host network driver's sync orchestration: converges this host's network namespace to a
 * {@linkcode HostNetState} (bridges and VXLAN devices of private networks,
 * VM ports on their bridges, the nftables port firewall, radvd, DHCP
 * servers) and removes what is not wanted. Idempotent: a second `sync` of
 * the same state, also from a new instance after a worker restart, runs no
 * command that changes anything, so rules keep their handles and counters
 * and daemons their pids.
 *
 * Order of one sync (a port never forwards a frame without its rules),
 * each step in its own file:
 * 0. the host input policy (drivers/net/host_input.ts);
 * 1. bridges and VXLAN devices (drivers/net/bridges.ts, vxlan.ts; FDB
 *    peers in unicast mode), created down, sysctls set, then up; the
 *    metadata addresses on every bridge and the routes to private
 *    networks (drivers/net/bridge_addrs.ts);
 * 2. taps an older release named renamed, missing taps created (down, on
 *    no bridge); ports no longer wanted taken off their bridge (our taps
 *    deleted) (drivers/net/ports.ts);
 * 3. every firewall change (tables `bridge ucloud` and `netdev ucloud`)
 *    in ONE `nft -f -` transaction (drivers/net/nft_apply.ts);
 * 4. radvd reconfigured (drivers/net/radvd.ts); DHCP servers made,
 *    restarted or removed (drivers/net/dhcp.ts; before ports come up, so
 *    that a VM's first router solicitation and DHCP request are answered);
 * 5. ports join their bridge and go up; bridges and VXLANs no longer
 *    wanted are deleted.
 * What the host has is read by drivers/net/host_state.ts; `teardown` is
 * drivers/net/teardown.ts.
 *
 * @example
 * ```ts
 * const underlay = await detectUnderlay();
 * const net = new NetDriver({ stateDir: "/var/lib/ucloud", underlay });
 * const report = await net.sync({ networks, ports, peers: {} }, { signal });
 * ```
 *
 * @module
 */
import { type Logger, logger } from "../../core/log.ts";
import { linkLocal } from "../../core/netaddr.ts";
import { netnsExec, type Step, stepRunner } from "./exec.ts";
import { listLinks, readNftTable } from "./host_state.ts";
import { VXLAN_PORT } from "./vxlan.ts";
import { checkBridges, deleteBridges, makeBridges } from "./bridges.ts";
import { dropBridgeAddrs, syncBridgeAddrs } from "./bridge_addrs.ts";
import {
  attachPorts,
  claimedFormerNames,
  createTaps,
  dropPorts,
  heldPorts,
  ourPorts,
  renameFormerTaps,
  setSysctls,
} from "./ports.ts";
import { teardownHost } from "./teardown.ts";
import { DhcpServers } from "./dhcp.ts";
import { dhcpServerOf } from "./dhcp_server.ts";
import { applyHostInput, hostInputSpec, readHostInput } from "./host_input.ts";
import { checkDeviceName, DEVICE_ALIAS, NFT_TABLE } from "./names.ts";
import { NetCounters } from "./counters.ts";
import { applyFirewall } from "./nft_apply.ts";
import { portDrops } from "./nft_ingress.ts";
import { type NetPlan, planState, type PortPlan } from "./plan.ts";
import { Radvd, type RadvdInterface } from "./radvd.ts";
import type { Exec, HostNetState, SyncReport, Underlay } from "./types.ts";

/** Options of {@linkcode NetDriver}. */
export interface NetDriverOptions {
  /**
   * The worker's state directory; radvd's files go to `<stateDir>/net`,
   * each DHCP server's to `<stateDir>/net/dhcp/<network>`.
   */
  stateDir: string;
  /** Where VXLAN packets leave; null: private networks stay on this host. */
  underlay: Underlay | null;
  vxlanPort?: number;
  log?: Logger;
  /**
   * Run every command in this named network namespace (`ip netns exec`),
   * for tests that act as several hosts; the worker runs in its own.
   */
  netns?: string;
  /**
   * Owner of the taps it makes (`ip tuntap add ... user`): qemu's `-runas`
   * user, which then alone (and root) may attach to them. Absent: no
   * owner, any user who can open /dev/net/tun may attach to an idle tap.
   */
  tapUser?: string;
}

/**
 * Makes this host's network what a {@linkcode HostNetState} says. One
 * instance per host (worker); `sync` calls are run one after the other.
 */
export class NetDriver {
  readonly stateDir: string;
  readonly underlay: Underlay | null;
  readonly vxlanPort: number;
  /** This host's link and port rule counters (drivers/net/counters.ts). */
  readonly counters: NetCounters;
  #exec: Exec;
  #step: Step;
  #log: Logger;
  #radvd: Radvd;
  #dhcp: DhcpServers;
  #netns?: string;
  #tapUser?: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: NetDriverOptions) {
    this.stateDir = opts.stateDir;
    this.underlay = opts.underlay;
    this.vxlanPort = opts.vxlanPort ?? VXLAN_PORT;
    this.#exec = netnsExec(opts.netns);
    this.counters = new NetCounters(this.#exec);
    this.#step = stepRunner(this.#exec);
    this.#log = opts.log ?? logger({ driver: "net" });
    this.#radvd = new Radvd({
      dir: `${opts.stateDir}/net`,
      exec: this.#exec,
      log: this.#log,
    });
    this.#netns = opts.netns;
    this.#tapUser = opts.tapUser;
    this.#dhcp = new DhcpServers({
      dir: `${opts.stateDir}/net/dhcp`,
      exec: this.#exec,
      hostNetns: opts.netns,
      log: this.#log,
    });
    if (opts.underlay) checkDeviceName(opts.underlay.device);
  }

  /**
   * Converges the host to `state`; returns the devices and chains it added,
   * changed and removed. Networks no port of `state` is on are left out
   * (their bridge and VXLAN go with their last port). One port never stops
   * the others: a port that fails its checks (drivers/net/plan.ts), whose
   * public bridge does not exist, whose tap does not come up or whose
   * rules the kernel refuses is left out and reported in `skipped`; like
   * the ports in `state.keep` it keeps what it had (device, rules, the
   * bridge it is on). Throws for a host-wide failure (the underlay, the
   * base chains, radvd); the error names the step, the device and the
   * command's stderr, and the next sync picks up from there.
   */
  sync(
    state: HostNetState,
    opts: { signal?: AbortSignal } = {},
  ): Promise<SyncReport> {
    const next = this.#queue.then(() => this.#sync(state, opts.signal));
    this.#queue = next.catch(() => {});
    return next;
  }

  /**
   * Removes everything ucloud made on this host: ports leave their bridges
   * (our taps are deleted), then radvd, the DHCP servers, the nft table,
   * the VXLAN devices and the private bridges go. Public bridges stay.
   */
  teardown(opts: { signal?: AbortSignal } = {}): Promise<void> {
    const next = this.#queue.then(() => this.#teardown(opts.signal));
    this.#queue = next.catch(() => {});
    return next;
  }

  /**
   * Packets each port's rules dropped so far (spoofing, reserved frames,
   * rogue servers: every rule but `allowed`), by port name; ports without
   * rules are absent. Counters start at 0 when a port's chain is made and
   * survive re-syncs; a rise means the VM sent what it may not.
   */
  async portDrops(
    opts: { signal?: AbortSignal } = {},
  ): Promise<Map<string, number>> {
    return portDrops(
      await readNftTable(this.#exec, opts.signal),
      await readNftTable(this.#exec, opts.signal, "netdev"),
    );
  }

  async #sync(state: HostNetState, signal?: AbortSignal): Promise<SyncReport> {
    const started = performance.now();
    const report: Required<Omit<SyncReport, "skipped">> = {
      added: [],
      removed: [],
      changed: [],
    };
    const { nets, ports, skipped } = planState(state, {
      vxlan: this.underlay !== null,
    });
    const leaveOut = (x: PortPlan, reason: string, retry?: boolean) => {
      ports.delete(x.port.name);
      skipped.push({
        port: x.port.name,
        network: x.net.net.id,
        reason,
        ...(retry ? { retry } : {}),
      });
    };
    /** Ports (and former tap names) that keep what they have. */
    const held = () => heldPorts(state, skipped.map((x) => x.port));
    let links = await listLinks(this.#step, signal);
    // Nothing wanted and nothing of ours here (a host that never had a VM
    // with a NIC): leave the host as it is, without even an empty table.
    if (
      nets.size === 0 && ports.size === 0 &&
      ![...links.values()].some((l) => l.alias === DEVICE_ALIAS) &&
      !(await readNftTable(this.#exec, signal)) &&
      !(await readHostInput(this.#exec))
    ) return report;

    // Everything that must already exist, before anything changes.
    checkBridges(nets, ports, links, this.underlay, leaveOut);
    const dhcpServers = [...nets.values()].flatMap((p) => {
      const s = dhcpServerOf(p.net, {
        bridge: p.bridge,
        mtu: p.mtu,
        ports: [...ports.values()].filter((x) => x.net === p).map((x) =>
          x.port
        ),
        hostNetns: this.#netns,
      });
      return s ? [s] : [];
    });
    signal?.throwIfAborted();

    // 0. What VMs may send to the host, and where VXLAN may come from
    // (drivers/net/host_input.ts), before any bridge or VXLAN is up.
    const good = [...ports.values()].map((x) => x.port);
    if (nets.size) {
      await this.#hostInput({ ...state, ports: good }, [
        ...nets.values(),
      ], signal);
    }

    // 1. Bridges and VXLAN devices of private networks.
    const sysctls: string[] = [];
    const ups: string[][] = [];
    await makeBridges(nets, links, state, report, sysctls, ups, {
      step: this.#step,
      log: this.#log,
      underlay: this.underlay,
      vxlanPort: this.vxlanPort,
    }, signal);

    // 2. Taps still named by an older release renamed; taps that are
    // missing made; ports no longer wanted leave their bridge.
    const table = await readNftTable(this.#exec, signal);
    const renamed = await renameFormerTaps(
      ports,
      links,
      claimedFormerNames(state.ports),
      this.#step,
      leaveOut,
      signal,
    );
    if (renamed.length) {
      report.changed.push(...renamed);
      links = await listLinks(this.#step, signal);
    }
    report.added.push(
      ...await createTaps(ports, links, this.#step, leaveOut, {
        user: this.#tapUser,
        signal,
      }),
    );
    const left = held();
    const stale = [...ourPorts(table, links)].filter((name) =>
      !ports.has(name) && !left.has(name)
    );
    report.removed.push(...await dropPorts(stale, links, this.#step, signal));
    links = await listLinks(this.#step, signal);
    await setSysctls(sysctls, ports, this.#step, leaveOut, signal);
    for (const args of ups) {
      await this.#step(`bring up ${args[2]}`, "ip", args, signal);
    }
    // The metadata addresses and the routes of replies to VMs.
    await syncBridgeAddrs([...nets.values()], this.#step, this.#log, signal);

    // 3. The firewall, both tables in one transaction. The ingress table
    // is read now: an older kernel deletes a netdev chain with its device.
    const fw = await applyFirewall(async (script, check) => {
      await this.#step(
        `${
          check ? "check" : "apply"
        } port rules (tables bridge and netdev ${NFT_TABLE})`,
        "nft",
        check ? ["-c", "-f", "-"] : ["-f", "-"],
        signal,
        script,
      );
    }, {
      bridge: table,
      ingress: await readNftTable(this.#exec, signal, "netdev"),
      ports: [...ports.values()].map((x) => x.rules),
      hold: held(),
    });
    for (const r of fw.rejected) leaveOut(ports.get(r.port)!, r.reason, true);
    for (const k of ["added", "changed", "removed"] as const) {
      report[k].push(...fw[k]);
    }

    // 4. Router advertisements and DHCP servers, before ports come up: a
    // VM's first router solicitation and DHCP request (sent when its link
    // comes up) then find radvd and dnsmasq. DHCP veths join their bridge
    // only now, when the rules isolating them (3.) are in place.
    // RAs go out from the bridge's own link-local address (the MAC set at
    // creation, addr_gen_mode eui64), not the metadata one it also holds.
    const ras: RadvdInterface[] = [...nets.values()]
      .filter((p) => p.net.kind === "private" && p.net.ra)
      .flatMap((p) => {
        const mac = links.get(p.bridge)?.mac;
        return mac
          ? [{
            bridge: p.bridge,
            prefix: p.net.prefix,
            mtu: p.mtu,
            managed: p.net.dhcp.v6,
            source: linkLocal(mac),
          }]
          : [];
      });
    const ra = await this.#radvd.apply(ras, { signal });
    if (ra === "started") report.added.push("radvd");
    if (ra === "stopped") report.removed.push("radvd");
    const dhcp = await this.#dhcp.apply(dhcpServers, { signal });
    report.added.push(...dhcp.added);
    report.changed.push(...dhcp.changed);
    report.removed.push(...dhcp.removed);

    // 5. Ports join their bridges; what is no longer wanted goes.
    await attachPorts(ports, links, this.#step, leaveOut, signal);

    // The bridges (and their VXLANs) of ports that keep what they have.
    const wantedDevs = new Set(
      [...nets.values()].flatMap((p) => [p.bridge, p.vxlan ?? ""]),
    );
    const holding = new Set<string>();
    for (const name of held()) {
      const master = links.get(name)?.master;
      if (master) holding.add(master);
    }
    for (const l of links.values()) {
      if (holding.has(l.name) || (l.master && holding.has(l.master))) {
        wantedDevs.add(l.name);
      }
    }
    report.removed.push(
      ...await deleteBridges(links, wantedDevs, this.#step, signal),
    );
    await dropBridgeAddrs(links, wantedDevs, this.#step, signal);
    if (!nets.size && !holding.size) await this.#hostInput(null, [], signal);

    const changed = report.added.length + report.removed.length +
      report.changed.length;
    if (changed) {
      this.#log.info("network synced", {
        ...report,
        ms: Math.round(performance.now() - started),
      });
    }
    return skipped.length ? { ...report, skipped } : report;
  }

  #teardown(signal?: AbortSignal): Promise<void> {
    return teardownHost({
      exec: this.#exec,
      step: this.#step,
      radvd: this.#radvd,
      dhcp: this.#dhcp,
      stateDir: this.stateDir,
      log: this.#log,
      removeHostInput: () => this.#hostInput(null, [], signal),
    }, signal);
  }

  /** Applies the host input policy of `state` (null: removes it). */
  async #hostInput(
    state: HostNetState | null,
    nets: NetPlan[],
    signal?: AbortSignal,
  ): Promise<void> {
    const spec = state &&
      hostInputSpec({
        networks: nets.map((p) => p.net),
        ports: state.ports,
        peers: state.peers,
        underlay: this.underlay?.device ?? null,
        vxlanPort: this.vxlanPort,
      });
    if (await applyHostInput(this.#exec, spec, { signal })) {
      this.#log.info(
        spec ? "host input policy set" : "host input policy removed",
      );
    }
  }
}
