/**
 * Fixtures of the DHCP tests of the host network driver
 * (tests/net_dhcp_test.ts, tests/net_dhcp_hosts_test.ts): a legacy network
 * (IPv4 and DHCPv4/v6), test MACs, `withHosts()` with VM namespaces that
 * checks no DHCP namespace is left, and what the tests look at: DHCP
 * namespaces, a network's dnsmasq, the isolation counters, eth0 of a
 * namespace, link names and distinct DHCPv4 offers.
 */
import assert from "node:assert/strict";
import { run } from "../../drivers/runner.ts";
import { NFT_TABLE, tapName } from "../../drivers/net/names.ts";
import { DHCP_CHAIN, type NftTable } from "../../drivers/net/nft.ts";
import type { NetworkSpec } from "../../drivers/net/types.ts";
import type { HostNet } from "./netns.ts";
import { type NetEnv, withNetHosts } from "./net_hosts.ts";
import { privateNet } from "./net_specs.ts";
import type { VmNs } from "./vmns.ts";

export { portOf } from "./net_specs.ts";

/** A private network with legacy IPv4 and both DHCP servers. */
export function legacyNet(
  id: string,
  vni: number,
  prefix: string,
): NetworkSpec {
  return privateNet(id, vni, prefix, {
    ipv4: "198.51.100.0/24",
    dhcp: { v6: true, v4: true },
  });
}

/** The test MAC of VM number `n`. */
function mac(n: number): string {
  return `02:c1:0d:00:01:${n.toString(16).padStart(2, "0")}`;
}

/** The hosts of a DHCP test, and `vm()` to add a VM namespace on one. */
export interface Env extends NetEnv {
  vm(name: string, host: string, n: number, up?: boolean): Promise<VmNs>;
}

/**
 * Hosts, VM namespaces and drivers. Afterwards every host is torn down by a
 * new driver, and no dnsmasq, radvd, DHCP namespace or VM may be left.
 */
export const withHosts = (names: string[], f: (env: Env) => Promise<void>) =>
  withNetHosts(
    names,
    (env) =>
      f({
        ...env,
        vm: (name, host, n, up = true) =>
          env.vms.create({
            name,
            hostNs: env.net.host(host).ns,
            port: tapName(mac(n)),
            mac: mac(n),
            up,
          }),
      }),
    {
      prefix: "ucdhcp",
      extraLeft: async (net) => ({
        "DHCP namespaces": await dhcpNamespacesOf(net),
      }),
    },
  );

/** The DHCP namespaces of the hosts of `net` that exist. */
export async function dhcpNamespacesOf(net: HostNet): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) =>
    [...net.hosts.values()].some((h) => n.startsWith(`${h.ns}-ucd`))
  );
}

/** The dnsmasq serving `network` on a host (pidfile checked), or null. */
export async function dnsmasqPid(dir: string, network: string) {
  const base = `${dir}/net/dhcp/${network}`;
  const pid = Number(
    await Deno.readTextFile(`${base}/dnsmasq.pid`).catch(() => ""),
  );
  if (!pid) return null;
  try {
    const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    return cmd.includes(`--conf-file=${base}/dnsmasq.conf`) ? pid : null;
  } catch {
    return null;
  }
}

/** Packets counted by the rule with `comment` in the DHCP chain. */
export function isolated(t: NftTable | null, comment: string): number {
  assert.ok(t, `no table ${NFT_TABLE}`);
  const rule = t.chains.get(DHCP_CHAIN)?.rules.find((r) =>
    r.comment === comment
  );
  assert.ok(rule, `no rule ${comment} in ${DHCP_CHAIN}`);
  return rule.packets;
}

/** eth0 of a namespace: MAC and global addresses. */
export async function eth0(
  ns: string,
): Promise<{ mac: string; addrs: string[] }> {
  const { stdout } = await run("ip", ["-n", ns, "-j", "addr", "show", "eth0"]);
  const [l] = JSON.parse(stdout) as {
    address: string;
    addr_info: { local: string; prefixlen: number; scope: string }[];
  }[];
  return {
    mac: l.address,
    addrs: l.addr_info.filter((a) => a.scope === "global").map((a) =>
      `${a.local}/${a.prefixlen}`
    ),
  };
}

export async function linkNames(ns: string): Promise<string[]> {
  const { stdout } = await run("ip", ["-n", ns, "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname);
}

/** Distinct offers as "yiaddr from server via srcMac". */
export function offersOf(
  offers: { yiaddr: string; server: string; srcMac: string }[],
) {
  return [...new Set(offers.map((o) => `${o.yiaddr} ${o.server} ${o.srcMac}`))]
    .sort();
}
