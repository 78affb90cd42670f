/**
 * DHCPv4 and DHCPv6 for networks that ask for them (`NetworkSpec.dhcp`).
 * Each such network with a port on this host gets ONE dnsmasq in its own
 * small network namespace (the "DHCP namespace", named like its device,
 * see `dhcpNetnsOf`), joined to the network's bridge by a veth: the host
 * end `ucd<tag>` (alias `ucloud-net`) is a bridge port, the peer is `eth0`
 * in the namespace with `<subnet+1>/len` (DHCPv4) and `<prefix>::1/64`
 * (DHCPv6). The server's addresses thus stay out of the host's routing.
 *
 * dnsmasq serves only this host's ports of the network, each by MAC, with
 * the address of its `PortSpec` (static ranges: nobody else gets an
 * answer). DHCPv6 matches the MAC too: dnsmasq takes an on-link client's
 * MAC from its neighbour table, whatever DUID the client sends.
 *
 * What a server serves comes from `dhcpServerOf` (drivers/net/dhcp_server.ts),
 * its config from `dnsmasqConfig` (drivers/net/dnsmasq_config.ts);
 * {@linkcode DhcpServers} converges namespaces, veths and addresses, has
 * each server's dnsmasq run (drivers/net/dnsmasq.ts) and removes what no
 * network needs.
 *
 * @example
 * ```ts
 * const dhcp = new DhcpServers({ dir: "/var/lib/ucloud/net/dhcp", exec: run });
 * const s = dhcpServerOf(net, { bridge: "ucb5", mtu: 1430, ports });
 * if (s) await dhcp.apply([s]);
 * await dhcp.stopAll();
 * ```
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";
import { deleteLink, netnsExec } from "./exec.ts";
import { DEVICE_ALIAS, isDhcpDeviceName, isDhcpNetnsName } from "./names.ts";
import { type DhcpServer, isNetworkId } from "./dhcp_server.ts";
import {
  canonicalAddr,
  listVeths,
  readEth0,
  type Veth,
} from "./dhcp_devices.ts";
import { dhcpFiles } from "./dnsmasq_config.ts";
import { dnsmasqPid, runDnsmasq, stopDnsmasq, stopStrays } from "./dnsmasq.ts";
import type { Exec } from "./types.ts";

/** What {@linkcode DhcpServers.apply} did, by device name. */
export interface DhcpChange {
  /** Servers made (namespace, veth, daemon). */
  added: string[];
  /** Servers whose daemon was restarted (config changed) or started again. */
  changed: string[];
  /** Servers removed. */
  removed: string[];
}

/** Options of {@linkcode DhcpServers}. */
export interface DhcpServersOptions {
  /** One directory per network: `<dir>/<network>/` (created). */
  dir: string;
  /** Runs commands in the host's namespace (where the bridges are). */
  exec: Exec;
  /** The driver's named namespace, if any (see `dhcpNetnsOf`). */
  hostNetns?: string;
  /** Runs commands in a DHCP namespace. */
  nsExec?: (netns: string) => Exec;
  log?: Logger;
}

/** This host's DHCP servers, found by their names and pidfiles. */
export class DhcpServers {
  readonly dir: string;
  #exec: Exec;
  #root: Exec;
  #nsExec: (netns: string) => Exec;
  #hostNetns?: string;
  #log?: Logger;

  constructor(
    { dir, exec, hostNetns, nsExec = netnsExec, log }: DhcpServersOptions,
  ) {
    this.dir = dir;
    this.#exec = exec;
    this.#root = nsExec("");
    this.#nsExec = nsExec;
    this.#hostNetns = hostNetns;
    this.#log = log;
  }

  /**
   * Makes exactly `servers` run: each one's namespace, veth, addresses and
   * daemon; everything of other networks goes. A server as wanted is not
   * touched (same pid). Throws naming the server and the failed step; the
   * next call picks up from there (a half-made server is made again).
   */
  async apply(
    servers: DhcpServer[],
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<DhcpChange> {
    const change: DhcpChange = { added: [], changed: [], removed: [] };
    for (const key of ["network", "device", "netns"] as const) {
      const seen = new Set<string>();
      for (const s of servers) {
        if (seen.has(s[key])) {
          throw new TypeError(`Two DHCP servers have ${key} ${s[key]}`);
        }
        seen.add(s[key]);
      }
    }
    const veths = await listVeths(this.#exec, signal);
    for (const s of servers) {
      try {
        await this.#converge(s, veths, change, signal);
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        throw new Error(
          `Cannot run the DHCP server of network ${s.network}: ${msg}`,
          { cause: err },
        );
      }
    }
    await this.#removeOthers(servers, veths, change, signal);
    return change;
  }

  /** Removes every DHCP server and the directory; the devices removed. */
  async stopAll({ signal }: { signal?: AbortSignal } = {}): Promise<string[]> {
    const change: DhcpChange = { added: [], changed: [], removed: [] };
    await this.#removeOthers(
      [],
      await listVeths(this.#exec, signal),
      change,
      signal,
    );
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    return change.removed;
  }

  /**
   * The pid of the dnsmasq serving `network`, or null: the pidfile's pid
   * must be alive and its command line must be dnsmasq with this config.
   */
  pid(network: string): Promise<number | null> {
    return dnsmasqPid(this.#dirOf(network));
  }

  #dirOf(network: string): string {
    if (!isNetworkId(network)) {
      throw new TypeError(`Bad network id ${JSON.stringify(network)}`);
    }
    return `${this.dir}/${network}`;
  }

  async #converge(
    s: DhcpServer,
    veths: Map<string, Veth>,
    change: DhcpChange,
    signal?: AbortSignal,
  ): Promise<void> {
    const ns = this.#nsExec(s.netns);
    const host = veths.get(s.device);
    if (host && host.alias !== DEVICE_ALIAS) {
      throw new Error(`a device ${s.device} exists and is not ucloud's`);
    }
    let inner = host && await exists(`/run/netns/${s.netns}`)
      ? await readEth0(ns, signal)
      : null;
    let fresh = false;
    if (!host || !inner) {
      // Missing or half made: start over.
      await this.#remove(s.network, s.device, s.netns, !!host, signal);
      await this.#create(s, signal);
      change.added.push(s.device);
      fresh = true;
      inner = { up: false, mtu: 0, addrs: [] };
    }

    const want = [s.v4?.address, s.v6?.address].filter((a): a is string => !!a)
      .map(canonicalAddr);
    for (const a of inner.addrs) {
      if (want.includes(a)) continue;
      await ns("ip", ["addr", "del", a, "dev", "eth0"], { signal });
    }
    for (const a of want) {
      if (inner.addrs.includes(a)) continue;
      const v6 = a.includes(":") ? ["nodad"] : [];
      await ns("ip", ["addr", "add", a, "dev", "eth0", ...v6], { signal });
    }
    if (!inner.up || inner.mtu !== s.mtu) {
      await ns("ip", ["link", "set", "eth0", "mtu", String(s.mtu), "up"], {
        signal,
      });
    }
    if (
      fresh || host?.master !== s.bridge || !host.up || host.mtu !== s.mtu
    ) {
      await this.#exec("ip", [
        "link",
        "set",
        s.device,
        "master",
        s.bridge,
        "mtu",
        String(s.mtu),
        "up",
      ], { signal, timeoutMs: 10_000 });
    }
    const daemon = await runDnsmasq(s, {
      dir: this.#dirOf(s.network),
      under: this.dir,
      exec: this.#exec,
      ns,
      root: this.#root,
      log: this.#log,
      signal,
    });
    if (daemon !== "unchanged" && !fresh) change.changed.push(s.device);
  }

  /**
   * Makes the namespace and the veth (host end down, on no bridge). The
   * veth is made and labelled inside the new namespace, then its host end
   * moves to the host: the host never has a `ucd*` device without the
   * label (which would block the name for good).
   */
  async #create(s: DhcpServer, signal?: AbortSignal): Promise<void> {
    const opts = { signal, timeoutMs: 10_000 };
    const ns = this.#nsExec(s.netns);
    const mtu = String(s.mtu);
    await this.#root("ip", ["netns", "add", s.netns], opts);
    // No DAD (addresses usable at once), never addresses from tenant RAs.
    await ns("sysctl", [
      "-q",
      "-w",
      "net/ipv6/conf/default/accept_dad=0",
      "net/ipv6/conf/default/accept_ra=0",
      "net/ipv6/conf/default/autoconf=0",
    ], opts);
    await ns("ip", [
      "link",
      "add",
      s.device,
      "mtu",
      mtu,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "mtu",
      mtu,
    ], opts);
    await ns("ip", ["link", "set", s.device, "alias", DEVICE_ALIAS], opts);
    await ns("ip", [
      "link",
      "set",
      s.device,
      "netns",
      this.#hostNetns ?? String(Deno.pid),
    ], opts);
    await this.#exec("sysctl", [
      "-q",
      "-w",
      `net/ipv6/conf/${s.device}/disable_ipv6=1`,
    ], opts);
  }

  /**
   * Removes a server: its daemon, its veth (when `hasDevice`), its
   * namespace; the files stay (the caller decides).
   */
  async #remove(
    network: string,
    device: string,
    netns: string,
    hasDevice: boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const pid = await this.pid(network);
    if (pid !== null) {
      await stopDnsmasq(pid, dhcpFiles(this.#dirOf(network)).conf);
      this.#log?.info("dnsmasq stopped", { network, pid });
    }
    const opts = { signal, timeoutMs: 10_000 };
    if (hasDevice) await deleteLink(this.#exec, device, opts);
    if (await exists(`/run/netns/${netns}`)) {
      await stopStrays(this.#root, netns, this.dir);
      await this.#root("ip", ["netns", "del", netns], opts);
    }
  }

  async #removeOthers(
    servers: DhcpServer[],
    veths: Map<string, Veth>,
    change: DhcpChange,
    signal?: AbortSignal,
  ): Promise<void> {
    const opts = { signal, timeoutMs: 10_000 };
    const networks = new Set(servers.map((s) => s.network));
    const devices = new Set(servers.map((s) => s.device));
    const namespaces = new Set(servers.map((s) => s.netns));
    for (const network of await dirNames(this.dir)) {
      if (networks.has(network) || !isNetworkId(network)) continue;
      const pid = await this.pid(network);
      if (pid !== null) {
        await stopDnsmasq(pid, dhcpFiles(this.#dirOf(network)).conf);
        this.#log?.info("dnsmasq stopped", { network, pid });
      }
      await Deno.remove(this.#dirOf(network), { recursive: true });
    }
    for (const [name, l] of veths) {
      if (
        devices.has(name) || l.alias !== DEVICE_ALIAS || !isDhcpDeviceName(name)
      ) continue;
      await deleteLink(this.#exec, name, opts);
      change.removed.push(name);
    }
    const { stdout } = await this.#root("ip", ["netns", "list"], opts);
    for (const line of stdout.split("\n")) {
      const name = line.split(" ")[0];
      if (!name || namespaces.has(name)) continue;
      if (!isDhcpNetnsName(name, this.#hostNetns)) continue;
      await stopStrays(this.#root, name, this.dir);
      await this.#root("ip", ["netns", "del", name], opts);
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function dirNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) out.push(e.name);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out;
}
