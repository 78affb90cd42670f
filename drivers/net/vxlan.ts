/**
 * The VXLAN device of a private network: made (or re-made when its VNI,
 * port, underlay or mode changed) on the network's bridge, and in
 * unicast mode its FDB kept to one all-zero entry per peer host
 * (head-end replication).
 *
 * @example
 * ```ts
 * await ensureVxlan(plan, links, state, report, sysctls, ups, {
 *   step, log, underlay, port: VXLAN_PORT,
 * }, signal);
 * ```
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";
import { parseIpv6 } from "../../core/netaddr.ts";
import type { Step } from "./exec.ts";
import type { Link } from "./host_state.ts";
import { DEVICE_ALIAS } from "./names.ts";
import type { NetPlan } from "./plan.ts";
import { ipv6Sysctl } from "./sysctl.ts";
import type {
  HostNetState,
  NetworkSpec,
  SyncReport,
  Underlay,
} from "./types.ts";

/** VXLAN over IPv6: outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN6_OVERHEAD = 70;
/** The default VXLAN UDP port (IANA). */
export const VXLAN_PORT = 4789;

/** What {@linkcode ensureVxlan} runs with. */
export interface VxlanContext {
  step: Step;
  log: Logger;
  underlay: Underlay;
  /** The VXLAN UDP port. */
  port: number;
}

/** Creates, re-creates (config changed) and configures a VXLAN. */
export async function ensureVxlan(
  p: NetPlan,
  links: Map<string, Link>,
  state: HostNetState,
  report: Required<Omit<SyncReport, "skipped">>,
  sysctls: string[],
  ups: string[][],
  ctx: VxlanContext,
  signal?: AbortSignal,
): Promise<void> {
  const u = ctx.underlay;
  const name = p.vxlan!;
  const multicast = (p.net.mode ?? "multicast") === "multicast";
  let l = links.get(name);
  if (l && !vxlanMatches(l, p.net, multicast, ctx)) {
    ctx.log.info("vxlan settings changed: re-creating it", {
      network: p.net.id,
      vxlan: name,
    });
    await ctx.step(
      `delete vxlan ${name}`,
      "ip",
      ["link", "del", name],
      signal,
    );
    report.removed.push(name);
    l = undefined;
  }
  if (!l) {
    const args = [
      "link",
      "add",
      name,
      "mtu",
      String(p.mtu),
      "type",
      "vxlan",
      "id",
      String(p.net.vni),
      "dstport",
      String(ctx.port),
      "local",
      u.address,
      "dev",
      u.device,
    ];
    if (multicast) args.push("group", p.net.group!);
    else args.push("nolearning");
    await ctx.step(`create vxlan ${name}`, "ip", args, signal);
    await ctx.step(`label vxlan ${name}`, "ip", [
      "link",
      "set",
      name,
      "alias",
      DEVICE_ALIAS,
    ], signal);
    report.added.push(name);
  }
  sysctls.push(ipv6Sysctl(name, "disable_ipv6", 1));
  if (!l || l.master !== p.bridge || !l.up || l.mtu !== p.mtu) {
    ups.push([
      "link",
      "set",
      name,
      "master",
      p.bridge,
      "mtu",
      String(p.mtu),
      "up",
    ]);
  }
  if (!multicast) await syncPeers(p, state.peers[p.net.id] ?? [], ctx, signal);
}

/** Whether VXLAN `l` has the settings `net` wants. */
function vxlanMatches(
  l: Link,
  net: NetworkSpec,
  multicast: boolean,
  ctx: VxlanContext,
): boolean {
  const u = ctx.underlay;
  const d = l.data;
  const sameAddr = (a: unknown, b: string) => {
    try {
      return typeof a === "string" && parseIpv6(a) === parseIpv6(b);
    } catch {
      return false;
    }
  };
  return l.kind === "vxlan" && d.id === net.vni &&
    d.port === ctx.port && d.link === u.device &&
    sameAddr(d.local6, u.address) &&
    (multicast
      ? sameAddr(d.group6, net.group ?? "")
      : d.group6 === undefined && d.learning === false);
}

/** Keeps one all-zero FDB entry per peer (head-end replication). */
async function syncPeers(
  p: NetPlan,
  peers: string[],
  ctx: VxlanContext,
  signal?: AbortSignal,
) {
  const name = p.vxlan!;
  const self = parseIpv6(ctx.underlay.address);
  const want = new Map<bigint, string>();
  for (const peer of peers) {
    const n = parseIpv6(peer);
    if (n !== self) want.set(n, peer);
  }
  const { stdout } = await ctx.step(`list fdb of ${name}`, "bridge", [
    "-j",
    "fdb",
    "show",
    "dev",
    name,
  ], signal);
  const have = new Map<bigint, string>();
  for (
    const e of JSON.parse(stdout || "[]") as { mac: string; dst?: string }[]
  ) {
    if (e.mac === "00:00:00:00:00:00" && e.dst) {
      have.set(parseIpv6(e.dst), e.dst);
    }
  }
  for (const [n, peer] of want) {
    if (have.has(n)) continue;
    await ctx.step(`add peer ${peer} to ${name}`, "bridge", [
      "fdb",
      "append",
      "00:00:00:00:00:00",
      "dev",
      name,
      "dst",
      peer,
    ], signal);
    ctx.log.info("vxlan peer added", { vxlan: name, peer });
  }
  for (const [n, peer] of have) {
    if (want.has(n)) continue;
    await ctx.step(`remove peer ${peer} from ${name}`, "bridge", [
      "fdb",
      "del",
      "00:00:00:00:00:00",
      "dev",
      name,
      "dst",
      peer,
    ], signal);
    ctx.log.info("vxlan peer removed", { vxlan: name, peer });
  }
}
