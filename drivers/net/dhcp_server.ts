/**
 * What one network's DHCP server on this host serves, built purely from
 * the network and this host's ports: `dhcpServerOf` gives the server's
 * device, namespace and addresses and one `DhcpHost` per port (by MAC,
 * with the address of its `PortSpec`), or throws for what dnsmasq would
 * serve wrong. drivers/net/dhcp.ts makes such servers run.
 *
 * @example
 * ```ts
 * const s = dhcpServerOf(net, { bridge: "ucb5", mtu: 1430, ports });
 * s?.hosts; // [{ mac: "02:00:00:00:00:01", ipv4: "10.0.0.2", ipv6: "fd00::2" }]
 * ```
 *
 * @module
 */
import {
  formatIpv4,
  formatIpv6,
  normalizeMac,
  parseIpv4,
  parseIpv6,
  parsePrefix4,
  parsePrefix6,
} from "../../core/netaddr.ts";
import { checkDeviceName, dhcpDeviceOf, dhcpNetnsOf } from "./names.ts";
import type { NetworkSpec, PortSpec } from "./types.ts";

/** A client the server answers: one local port of the network. */
export interface DhcpHost {
  mac: string;
  /** Offered by DHCPv4. */
  ipv4?: string;
  /** Offered by DHCPv6. */
  ipv6?: string;
}

/** One network's DHCP server on this host. */
export interface DhcpServer {
  network: string;
  /** Host end of the veth, a port of `bridge`. */
  device: string;
  /** The DHCP namespace. */
  netns: string;
  bridge: string;
  mtu: number;
  /** DHCPv4: the subnet and the server's `<subnet+1>/len`. */
  v4?: { subnet: string; address: string };
  /** DHCPv6: the /64 and the server's `<prefix>::1/64`. */
  v6?: { prefix: string; address: string };
  /** Sorted by MAC. */
  hosts: DhcpHost[];
}

const NETWORK_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Whether `id` can name a DHCP server's directory (a network id). */
export function isNetworkId(id: string): boolean {
  return NETWORK_RE.test(id);
}

/**
 * The DHCP server `net` needs on this host, or null when it asks for none.
 * `ports` are this host's ports (those of other networks are skipped).
 * DHCPv4 serves the ports with an `ipv4`. Throws a TypeError when DHCPv4
 * is asked without an IPv4 subnet, when an address lies outside the
 * network or on the server's, or when two ports have one MAC.
 */
export function dhcpServerOf(
  net: NetworkSpec,
  { bridge, mtu, ports, hostNetns }: {
    bridge: string;
    mtu: number;
    ports: PortSpec[];
    /** The driver's named namespace, if any (see `dhcpNetnsOf`). */
    hostNetns?: string;
  },
): DhcpServer | null {
  if (!net.dhcp.v4 && !net.dhcp.v6) return null;
  if (!NETWORK_RE.test(net.id)) {
    throw new TypeError(`Bad network id ${JSON.stringify(net.id)}`);
  }
  checkDeviceName(bridge);
  const s: DhcpServer = {
    network: net.id,
    device: dhcpDeviceOf(net),
    netns: dhcpNetnsOf(net, hostNetns),
    bridge,
    mtu,
    hosts: [],
  };
  let v4: { first: number; last: number; server: number } | undefined;
  if (net.dhcp.v4) {
    if (!net.ipv4) {
      throw new TypeError(`Network ${net.id}: DHCPv4 needs an ipv4 subnet`);
    }
    const p = parsePrefix4(net.ipv4);
    const size = 2 ** (32 - p.length);
    v4 = {
      first: p.network + 2,
      last: p.network + size - 2,
      server: p.network + 1,
    };
    s.v4 = {
      subnet: `${formatIpv4(p.network)}/${p.length}`,
      address: `${formatIpv4(v4.server)}/${p.length}`,
    };
  }
  let v6: { network: bigint; server: bigint } | undefined;
  if (net.dhcp.v6) {
    const p = parsePrefix6(net.prefix);
    if (p.length !== 64) {
      throw new TypeError(
        `Network ${net.id}: prefix ${net.prefix} is not a /64`,
      );
    }
    v6 = { network: p.network, server: p.network + 1n };
    s.v6 = {
      prefix: `${formatIpv6(p.network)}/64`,
      address: `${formatIpv6(v6.server)}/64`,
    };
  }
  const byMac = new Map<string, string>();
  for (const port of ports) {
    if (port.network !== net.id) continue;
    const mac = normalizeMac(port.mac);
    const other = byMac.get(mac);
    if (other) {
      throw new TypeError(`Ports ${other} and ${port.name} have MAC ${mac}`);
    }
    byMac.set(mac, port.name);
    const host: DhcpHost = { mac };
    if (v4 && port.ipv4) {
      const n = parseIpv4(port.ipv4);
      if (n < v4.first || n > v4.last) {
        throw new TypeError(
          `Port ${port.name}: ${port.ipv4} is not a client address of ${
            s.v4!.subnet
          }`,
        );
      }
      host.ipv4 = formatIpv4(n);
    }
    if (v6) {
      const n = parseIpv6(port.ipv6);
      if (n >> 64n !== v6.network >> 64n || n === v6.server) {
        throw new TypeError(
          `Port ${port.name}: ${port.ipv6} is not a client address of ${
            s.v6!.prefix
          }`,
        );
      }
      host.ipv6 = formatIpv6(n);
    }
    if (host.ipv4 || host.ipv6) s.hosts.push(host);
  }
  s.hosts.sort((a, b) => a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0);
  return s;
}
