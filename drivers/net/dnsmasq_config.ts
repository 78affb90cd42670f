/**
 * The dnsmasq config of one DHCP server (drivers/net/dhcp_server.ts) and
 * where its files are; pure. The hosts are `dhcp-host` lines of the
 * config, not a `--dhcp-hostsfile` reread on SIGHUP: dnsmasq reads the
 * config as root and then runs as `nobody`, which cannot read a file in a
 * private state directory (mode 0700) later. So a changed port set
 * restarts dnsmasq (a few ms; leases and the server DUID are kept in the
 * lease file), and dnsmasq keeps running without root.
 *
 * @example
 * ```ts
 * const conf = dnsmasqConfig(server, "/var/lib/ucloud/net/dhcp/net-1");
 * dhcpFiles("/var/lib/ucloud/net/dhcp/net-1").pid; // ".../dnsmasq.pid"
 * ```
 *
 * @module
 */
import {
  formatIpv4,
  formatIpv6,
  parsePrefix4,
  parsePrefix6,
} from "../../core/netaddr.ts";
import type { DhcpServer } from "./dhcp_server.ts";
import { METADATA } from "./host_input.ts";

/** Lease time of every address (DHCPv4 and DHCPv6). */
export const DHCP_LEASE = "1h";

/** Where a server's files are: `<dir>/dnsmasq.conf`, `leases`, ... */
export function dhcpFiles(dir: string) {
  return {
    conf: `${dir}/dnsmasq.conf`,
    leases: `${dir}/leases`,
    pid: `${dir}/dnsmasq.pid`,
    log: `${dir}/dnsmasq.log`,
  };
}

/**
 * The dnsmasq config of `s` with its files in `dir`: no DNS (`port=0`),
 * nothing read from the host (`no-resolv`, `no-hosts`), only `eth0`,
 * static ranges (only the `dhcp-host`s are answered, one per host:
 * `<mac>[,<ipv4>][,[<ipv6>]]`), no router option (the server routes
 * nothing), a classless static route (option 121) to the metadata
 * service's `169.254.169.254/32` on-link (gateway 0.0.0.0; the host holds
 * it on the bridge), authoritative (renewals after a restart are
 * answered), DHCP messages logged only when they fail.
 */
export function dnsmasqConfig(s: DhcpServer, dir: string): string {
  const f = dhcpFiles(dir);
  const out = [
    `# Written by ucloud (drivers/net/dhcp.ts) for network ${s.network}; changes are overwritten.`,
    "port=0",
    "no-resolv",
    "no-hosts",
    "bind-interfaces",
    "interface=eth0",
    "dhcp-authoritative",
  ];
  if (s.v4) {
    const p = parsePrefix4(s.v4.subnet);
    const mask = formatIpv4(2 ** 32 - 2 ** (32 - p.length));
    out.push(
      `dhcp-range=${formatIpv4(p.network)},static,${mask},${DHCP_LEASE}`,
      "dhcp-option=option:router",
      `dhcp-option=option:classless-static-route,${METADATA.ipv4}/32,0.0.0.0`,
    );
  }
  if (s.v6) {
    const p = parsePrefix6(s.v6.prefix);
    out.push(`dhcp-range=${formatIpv6(p.network)},static,64,${DHCP_LEASE}`);
  }
  for (const h of s.hosts) {
    const addrs = [h.ipv4, h.ipv6 && `[${h.ipv6}]`].filter(Boolean);
    out.push(`dhcp-host=${[h.mac, ...addrs].join(",")}`);
  }
  out.push(
    `dhcp-leasefile=${f.leases}`,
    `pid-file=${f.pid}`,
    `log-facility=${f.log}`,
    "quiet-dhcp",
    "quiet-dhcp6",
  );
  return out.join("\n") + "\n";
}
