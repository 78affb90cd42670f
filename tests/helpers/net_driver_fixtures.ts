/**
 * Fixtures of the host network driver tests (net_driver_test.ts,
 * net_firewall_test.ts): network and port specs, the kernel's view of links,
 * FDB, sysctls and nftables counters, and the shared state of the port
 * firewall test's steps ({@linkcode FirewallCtx}).
 */
import assert from "node:assert/strict";
import { run } from "../../drivers/runner.ts";
import type { NftTable } from "../../drivers/net/nft.ts";
import type {
  HostNetState,
  NetworkSpec,
  PortSpec,
} from "../../drivers/net/types.ts";
import { type NetEnv, withNetHosts } from "./net_hosts.ts";
import type { HostNet, NetHost } from "./netns.ts";
import type { frame } from "./frames.ts";
import type { marker } from "./vm_wire.ts";
import type { VmNs, VmSet } from "./vmns.ts";

export { portOf, privateNet } from "./net_specs.ts";

/** A locally administered test MAC numbered `n`. */
export function mac(n: number): string {
  return `02:c1:0d:00:${(n >> 8).toString(16).padStart(2, "0")}:${
    (n & 0xff).toString(16).padStart(2, "0")
  }`;
}

type Env = NetEnv;

/** Hosts, VM namespaces and drivers; everything checked gone afterwards. */
export const withHosts = (names: string[], f: (env: Env) => Promise<void>) =>
  withNetHosts(names, f);

/** Packets counted by the rules with `comment` in `chain` (summed). */
export function counted(
  t: NftTable | null,
  chain: string,
  comment: string,
): number {
  const rules =
    t?.chains.get(chain)?.rules.filter((r) => r.comment === comment) ??
      [];
  assert.ok(rules.length > 0, `no rule ${comment} in ${chain}`);
  return rules.reduce((n, r) => n + r.packets, 0);
}

/** Rule handles per chain, for "nothing was replaced" checks. */
export function handles(t: NftTable | null): Record<string, number[]> {
  return Object.fromEntries(
    [...t?.chains.values() ?? []].map((
      c,
    ) => [c.name, c.rules.map((r) => r.handle)]),
  );
}

/** One link as `ip -d -j link show` reports it. */
export interface Link {
  ifname: string;
  master?: string;
  mtu: number;
  flags: string[];
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** The links of namespace `ns` by name. */
export async function links(ns: string): Promise<Map<string, Link>> {
  const { stdout } = await run("ip", ["-n", ns, "-d", "-j", "link", "show"]);
  return new Map((JSON.parse(stdout) as Link[]).map((l) => [l.ifname, l]));
}

/** Remote VTEPs of VXLAN device `dev` (its all-zero FDB entries). */
export async function fdbPeers(ns: string, dev: string): Promise<string[]> {
  const { stdout } = await run("bridge", [
    "-n",
    ns,
    "-j",
    "fdb",
    "show",
    "dev",
    dev,
  ]);
  return (JSON.parse(stdout) as { mac: string; dst?: string }[])
    .filter((e) => e.mac === "00:00:00:00:00:00" && e.dst).map((e) => e.dst!);
}

/** Sysctl `key` in namespace `ns`. */
export async function sysctl(ns: string, key: string): Promise<string> {
  const { stdout } = await run("ip", [
    "netns",
    "exec",
    ns,
    "sysctl",
    "-n",
    key,
  ]);
  return stdout.trim();
}

/** Markers received, counted. */
export function tally(markers: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of markers) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

/** What the steps of the port firewall test share (net_firewall_test.ts). */
export interface FirewallCtx {
  net: HostNet;
  h1: NetHost;
  vms: VmSet;
  dirs: Map<string, string>;
  /** A new driver for a host (see {@linkcode NetEnv}). */
  driver: NetEnv["driver"];
  /** The driver of h1 (no underlay). */
  d: ReturnType<NetEnv["driver"]>;
  /** The state `d` was synced to. */
  state: HostNetState;
  /** The /64 numbered `n` of this test's network. */
  prefix: (n: number) => string;
  n6: NetworkSpec;
  n4: NetworkSpec;
  /** Creates VM `name` on h1 with MAC `mac(n)`. */
  vm: (name: string, n: number, ipv4?: string) => Promise<VmNs>;
  x: VmNs;
  y: VmNs;
  x4: VmNs;
  y4: VmNs;
  tapPort: PortSpec;
  X6: string;
  Y6: string;
  XLL: string;
  YLL: string;
  X46: string;
  Y46: string;
  SPOOF: string;
  BCAST: string;
  ALL_NODES: string;
  ZERO: string;
  ROGUE: string;
  m: typeof marker;
  e: typeof frame.ether;
}
