/**
 * The bridges of private networks (and through drivers/net/vxlan.ts their
 * VXLAN devices): made down with a random MAC, no STP and no learning from
 * link-local frames, labelled ucloud's; their sysctls and "up" commands
 * are collected for the caller to run once the ports are in place. Also
 * deletes the bridges and VXLANs of ours no longer wanted.
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
import type { NetPlan } from "./plan.ts";
import { ipv6Sysctl } from "./sysctl.ts";
import type { HostNetState, SyncReport, Underlay } from "./types.ts";
import { ensureVxlan } from "./vxlan.ts";

/** What {@linkcode makeBridges} runs with. */
export interface BridgeContext {
  step: Step;
  log: Logger;
  /** Null: private networks stay on this host (no VXLAN). */
  underlay: Underlay | null;
  vxlanPort: number;
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
    for (
      const [k, v] of [
        ["accept_ra", 0],
        ["autoconf", 0],
        ["forwarding", 1],
        ["accept_dad", 0],
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
