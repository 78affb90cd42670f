/**
 * The bridges of private networks (and through drivers/net/vxlan.ts their
 * VXLAN devices): made down with a random MAC, no STP and no learning from
 * link-local frames, labelled ucloud's; their sysctls and "up" commands
 * are collected for the caller to run once the ports are in place. Also
 * checks the bridges that must exist (and sets each network's MTU) before
 * a sync changes anything, and deletes the bridges and VXLANs of ours no
 * longer wanted.
 *
 * @example
 * ```ts
 * const sysctls: string[] = [], ups: string[][] = [];
 * await makeBridges(nets, links, state, report, sysctls, ups, ctx, signal);
 * report.removed.push(...await deleteBridges(links, wanted, step, signal));
 * ```
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";
import type { Step } from "./exec.ts";
import { isOurs, type Link } from "./host_state.ts";
import { DEVICE_ALIAS } from "./names.ts";
import type { NetPlan, PortPlan } from "./plan.ts";
import type { LeaveOut } from "./ports.ts";
import { ipv6Sysctl } from "./sysctl.ts";
import type { HostNetState, SyncReport, Underlay } from "./types.ts";
import { ensureVxlan, VXLAN6_OVERHEAD } from "./vxlan.ts";

/** What {@linkcode makeBridges} runs with. */
export interface BridgeContext {
  step: Step;
  log: Logger;
  /** Null: private networks stay on this host (no VXLAN). */
  underlay: Underlay | null;
  vxlanPort: number;
}

/**
 * Checks what must already exist before a sync changes anything and sets
 * each network's MTU: the underlay's less {@linkcode VXLAN6_OVERHEAD} for
 * private networks (1500 without an underlay), the bridge's for public
 * ones. Throws when the underlay is missing or leaves less than IPv6's
 * 1280; a public network whose bridge is missing, or a private one whose
 * bridge name another kind of device has, is dropped from `nets` and its
 * ports are left out.
 */
export function checkBridges(
  nets: Map<string, NetPlan>,
  ports: Map<string, PortPlan>,
  links: Map<string, Link>,
  underlay: Underlay | null,
  leaveOut: LeaveOut,
): void {
  let underlayMtu = 1500;
  if (underlay) {
    const dev = links.get(underlay.device);
    if (!dev) {
      throw new Error(
        `Cannot sync networks: underlay device ${underlay.device} does not exist`,
      );
    }
    underlayMtu = dev.mtu;
  }
  for (const p of nets.values()) {
    if (p.net.kind === "private") {
      p.mtu = underlay ? underlayMtu - VXLAN6_OVERHEAD : 1500;
      if (p.mtu < 1280) {
        throw new Error(
          `Cannot sync network ${p.net.id}: underlay MTU ${underlayMtu} leaves ${p.mtu} for guests, IPv6 needs 1280`,
        );
      }
      continue;
    }
    const br = links.get(p.bridge);
    if (!br || br.kind !== "bridge") {
      // One network's missing bridge must not stop every other port here.
      const reason =
        `Cannot attach ports to public network ${p.net.id}: bridge ${p.bridge} ${
          br ? "is not a bridge" : "does not exist"
        }`;
      nets.delete(p.net.id);
      for (const x of [...ports.values()]) {
        if (x.net === p) leaveOut(x, reason);
      }
      continue;
    }
    p.mtu = br.mtu;
  }
  for (const p of [...nets.values()]) {
    const existing = links.get(p.bridge);
    if (p.net.kind === "private" && existing && existing.kind !== "bridge") {
      const reason =
        `Cannot make bridge ${p.bridge} of network ${p.net.id}: a ${
          existing.kind ?? "device"
        } has that name`;
      nets.delete(p.net.id);
      for (const x of [...ports.values()]) {
        if (x.net === p) leaveOut(x, reason);
      }
    }
  }
}

/**
 * Makes the bridge (and VXLAN) of every private network in `nets` that
 * lacks one; pushes their sysctls to `sysctls` and the commands that
 * bring them up to `ups`; sets `no_linklocal_learn` on every bridge of
 * `nets` (public ones too) that lacks it.
 */
export async function makeBridges(
  nets: Map<string, NetPlan>,
  links: Map<string, Link>,
  state: HostNetState,
  report: Required<Omit<SyncReport, "skipped">>,
  sysctls: string[],
  ups: string[][],
  ctx: BridgeContext,
  signal?: AbortSignal,
): Promise<void> {
  for (const p of nets.values()) {
    if (p.net.kind !== "private") continue;
    const br = links.get(p.bridge);
    if (!br) {
      await ctx.step(`create bridge ${p.bridge}`, "ip", [
        "link",
        "add",
        p.bridge,
        "address",
        bridgeMac(),
        "mtu",
        String(p.mtu),
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
        "mcast_snooping",
        "0",
        "no_linklocal_learn",
        "1",
      ], signal);
      await ctx.step(`label bridge ${p.bridge}`, "ip", [
        "link",
        "set",
        p.bridge,
        "alias",
        DEVICE_ALIAS,
      ], signal);
      report.added.push(p.bridge);
      if (!ctx.underlay) {
        ctx.log.info("network stays on this host: no underlay", {
          network: p.net.id,
          bridge: p.bridge,
        });
      }
    }
    // The host never configures itself from tenant RAs. Forwarding on
    // the bridge only makes the host a router on it, as radvd wants
    // (packets are routed only with net.ipv6.conf.all.forwarding). No
    // DAD for the bridge's link-local (from a random MAC): radvd cannot
    // answer a VM's first router solicitation from a tentative address.
    // That address is the EUI-64 of the MAC whatever the host's default
    // (radvd sends only from it: drivers/net/radvd.ts).
    for (
      const [k, v] of [
        ["accept_ra", 0],
        ["autoconf", 0],
        ["forwarding", 1],
        ["accept_dad", 0],
        ["addr_gen_mode", 0],
      ] as const
    ) {
      sysctls.push(ipv6Sysctl(p.bridge, k, v));
    }
    if (!br || !br.up || br.mtu !== p.mtu) {
      ups.push(["link", "set", p.bridge, "mtu", String(p.mtu), "up"]);
    }
    if (p.vxlan) {
      await ensureVxlan(p, links, state, report, sysctls, ups, {
        step: ctx.step,
        log: ctx.log,
        underlay: ctx.underlay!,
        port: ctx.vxlanPort,
      }, signal);
    }
  }

  // Frames to 01:80:c2:00:00:0x teach no bridge of a VM anything (the
  // ports' ingress chains drop them; this covers VXLANs and uplinks).
  for (const p of nets.values()) {
    const br = links.get(p.bridge);
    if (!br || br.data.no_linklocal_learn === 1) continue;
    await ctx.step(`set no_linklocal_learn on ${p.bridge}`, "ip", [
      "link",
      "set",
      p.bridge,
      "type",
      "bridge",
      "no_linklocal_learn",
      "1",
    ], signal);
  }
}

/**
 * Deletes our VXLANs, then our bridges, that are not in `keep`; returns
 * their names.
 */
export async function deleteBridges(
  links: Map<string, Link>,
  keep: Set<string>,
  step: Step,
  signal?: AbortSignal,
): Promise<string[]> {
  const removed: string[] = [];
  for (const kind of ["vxlan", "bridge"]) {
    for (const l of links.values()) {
      if (!isOurs(l) || l.kind !== kind || keep.has(l.name)) continue;
      await step(`delete ${kind} ${l.name}`, "ip", [
        "link",
        "del",
        l.name,
      ], signal);
      removed.push(l.name);
    }
  }
  return removed;
}

/** A random locally administered unicast MAC for a bridge (06:...). */
function bridgeMac(): string {
  const b = crypto.getRandomValues(new Uint8Array(5));
  return ["06", ...Array.from(b, (x) => x.toString(16).padStart(2, "0"))]
    .join(":");
}
