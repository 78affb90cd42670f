/**
 * The metadata service's addresses on the bridges of this host's networks
 * and the routes its replies take. Every bridge of a wanted network
 * (private `ucb*` and the admin's public bridges) holds
 * `fe80::a9fe:a9fe/64` and `fd00:ec2::254/128`, and `169.254.169.254/32`
 * when the network has legacy IPv4 ({@linkcode METADATA}), all without
 * duplicate address detection: every host of a network holds them on the
 * same segment, and the port firewall keeps each host's to its own taps
 * (drivers/net/nft_metadata.ts). The IPv6 ones are deprecated (preferred
 * lifetime 0), so the host never picks them as the source of its own
 * traffic (to a neighbour's link-local address, a ULA through a public
 * bridge), which `metadata-out` would drop; the service's sockets bound
 * to them accept and reply all the same.
 *
 * A reply to a VM's global address needs a route to the VM's network: for
 * each private network `<prefix> dev ucbX`, and `<subnet> dev ucbX` on a
 * legacy network, added (`proto static`) only when no other network on
 * this host has the same prefix or subnet. They go into ucloud's own table
 * {@linkcode REPLY_TABLE}, never the main table: tenants choose their
 * prefixes and subnets, and the host's own traffic (to etcd, DNS, the
 * underlay) must not follow them into a bridge, nor may the host route
 * between networks. Only the service's replies look the table up: rules
 * `from fd00:ec2::254 lookup 4242` (IPv6) and `from 169.254.169.254 lookup
 * 4242` (IPv4), priority 4242, while some route of their family is
 * there; a reply from `fe80::a9fe:a9fe` is scoped to its bridge and needs
 * none. Public networks are routed by the admin (the host usually is their
 * router already): no route is added for them.
 *
 * A private bridge takes its addresses and routes along when it is
 * deleted; a public bridge whose network this host no longer has loses
 * the metadata addresses (they are ucloud's on any bridge of a host that
 * runs it); the rules go with the last route and at teardown
 * ({@linkcode dropReplyRoutes}). Idempotent: what the kernel already has
 * is left alone.
 *
 * @example
 * ```ts
 * await syncBridgeAddrs([...nets.values()], step, log, signal);
 * await dropBridgeAddrs(links, wantedBridges, step, signal);
 * ```
 *
 * @module
 */
import type { Logger } from "../../core/log.ts";
import {
  canonicalPrefix6,
  formatIpv4,
  parseIpv6,
  parsePrefix4,
} from "../../core/netaddr.ts";
import type { Step } from "./exec.ts";
import type { Link } from "./host_state.ts";
import { METADATA } from "./host_input.ts";
import { isBridgeName } from "./names.ts";
import type { NetPlan } from "./plan.ts";

/**
 * The routing table (and the priority of its rules) of the routes the
 * metadata service's replies take; no other traffic looks it up.
 */
export const REPLY_TABLE = 4242;

/** The families as `ip` takes them. */
type Family = "-4" | "-6";
const FAMILIES: Family[] = ["-4", "-6"];

/** An address as `ip addr add` takes it: `<address>/<length>`. */
type Cidr = string;

/** The metadata addresses a bridge of `net` holds. */
export function metadataAddrs(net: { ipv4?: string }): Cidr[] {
  const [ll, global] = METADATA.ipv6;
  return [
    `${ll}/64`,
    `${global}/128`,
    ...(net.ipv4 ? [`${METADATA.ipv4}/32`] : []),
  ];
}

/**
 * The routes wanted: destination prefix → bridge, for the private
 * networks of `nets` whose prefix (or IPv4 subnet) no other network of
 * `nets` has.
 */
export function wantedRoutes(nets: NetPlan[]): Map<string, string> {
  const count = new Map<string, number>();
  const dsts = (p: NetPlan) => [
    canonicalPrefix6(p.net.prefix),
    ...(p.net.ipv4 ? [canonicalPrefix4(p.net.ipv4)] : []),
  ];
  for (const p of nets) {
    for (const d of dsts(p)) count.set(d, (count.get(d) ?? 0) + 1);
  }
  const out = new Map<string, string>();
  for (const p of nets) {
    if (p.net.kind !== "private") continue;
    for (const d of dsts(p)) if (count.get(d) === 1) out.set(d, p.bridge);
  }
  return out;
}

/**
 * Adds the metadata addresses to the bridge of every network of `nets`
 * and the {@linkcode wantedRoutes} to table {@linkcode REPLY_TABLE}, with
 * the rules that make the service's replies look it up; deletes the
 * routes there no longer wanted, the rules when no route of their family
 * is left, and any route of a private bridge in the main table that is
 * not the kernel's.
 */
export async function syncBridgeAddrs(
  nets: NetPlan[],
  step: Step,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const have = await listAddrs(step, signal);
  for (const p of nets) {
    const on = have.get(p.bridge) ?? new Map();
    for (const a of metadataAddrs(p.net)) {
      const v6 = a.includes(":");
      const deprecated = on.get(addrKey(a));
      if (deprecated || (deprecated === false && !v6)) continue;
      // IPv6 deprecated (preferred lifetime 0): source address selection
      // avoids them for the host's own traffic (RFC 6724 rule 3), while
      // the service's sockets bound to them still accept and reply.
      const verb = deprecated === undefined ? "add" : "change";
      await step(`${verb} address ${a} on ${p.bridge}`, "ip", [
        "addr",
        verb,
        a,
        "dev",
        p.bridge,
        ...(v6 ? ["nodad", "preferred_lft", "0"] : []),
      ], signal);
    }
  }
  const want = wantedRoutes(nets);
  for (const r of await listRoutes("main", step, signal)) {
    // Tenant prefixes never belong in the main table.
    if (isBridgeName(r.dev) && !r.kernel) {
      await delRoute(r, "main", step, signal);
      log.info("tenant route removed from the main table", { ...r });
    }
  }
  const routes = await listRoutes(REPLY_TABLE, step, signal);
  for (const r of routes) {
    if (want.get(r.dst) !== r.dev) {
      await delRoute(r, REPLY_TABLE, step, signal);
    }
  }
  for (const [dst, bridge] of want) {
    if (routes.some((r) => r.dst === dst && r.dev === bridge)) continue;
    await step(`add route ${dst} dev ${bridge} table ${REPLY_TABLE}`, "ip", [
      "route",
      "add",
      dst,
      "dev",
      bridge,
      "table",
      String(REPLY_TABLE),
      "proto",
      "static",
    ], signal);
  }
  const dsts = [...want.keys()];
  await syncRules(
    {
      "-6": dsts.some((d) => d.includes(":")),
      "-4": dsts.some((d) => !d.includes(":")),
    },
    step,
    signal,
  );
}

/**
 * Removes the reply routes' table and its rules (teardown; a private
 * bridge's routes go with the bridge, this catches the rest).
 */
export async function dropReplyRoutes(
  step: Step,
  signal?: AbortSignal,
): Promise<void> {
  for (const r of await listRoutes(REPLY_TABLE, step, signal)) {
    await delRoute(r, REPLY_TABLE, step, signal);
  }
  await syncRules({ "-6": false, "-4": false }, step, signal);
}

/** Adds or deletes the rule of each family as `want` says (idempotent). */
async function syncRules(
  want: Record<Family, boolean>,
  step: Step,
  signal?: AbortSignal,
): Promise<void> {
  for (const family of FAMILIES) {
    const src = family === "-6" ? METADATA.ipv6[1] : METADATA.ipv4;
    const { stdout } = await step("list rules", "ip", [
      "-j",
      family,
      "rule",
      "show",
    ], signal);
    const ours = (JSON.parse(stdout || "[]") as {
      priority: number;
      src?: string;
      table?: string;
    }[]).filter((r) =>
      r.priority === REPLY_TABLE && r.src === src &&
      r.table === String(REPLY_TABLE)
    );
    const rule = [
      "pref",
      String(REPLY_TABLE),
      "from",
      src,
      "lookup",
      String(REPLY_TABLE),
    ];
    if (want[family] && !ours.length) {
      await step(
        `add rule from ${src}`,
        "ip",
        [family, "rule", "add", ...rule],
        signal,
      );
    }
    if (!want[family]) {
      for (const _ of ours) {
        await step(`delete rule from ${src}`, "ip", [
          family,
          "rule",
          "del",
          ...rule,
        ], signal);
      }
    }
  }
}

async function delRoute(
  r: Route,
  table: "main" | number,
  step: Step,
  signal?: AbortSignal,
): Promise<void> {
  await step(`delete route ${r.dst} dev ${r.dev} table ${table}`, "ip", [
    "route",
    "del",
    r.dst,
    "dev",
    r.dev,
    "table",
    String(table),
  ], signal);
}

/**
 * Deletes the metadata addresses from every bridge that is not a private
 * one (those go with their bridge) and not in `keep`; returns the bridges.
 */
export async function dropBridgeAddrs(
  links: Map<string, Link>,
  keep: ReadonlySet<string>,
  step: Step,
  signal?: AbortSignal,
): Promise<string[]> {
  const have = await listAddrs(step, signal);
  const out: string[] = [];
  for (const l of links.values()) {
    if (l.kind !== "bridge" || isBridgeName(l.name) || keep.has(l.name)) {
      continue;
    }
    const on = have.get(l.name);
    const ours = metadataAddrs({ ipv4: "any" }).filter((a) =>
      on?.has(addrKey(a))
    );
    for (const a of ours) {
      await step(`delete address ${a} from ${l.name}`, "ip", [
        "addr",
        "del",
        a,
        "dev",
        l.name,
      ], signal);
    }
    if (ours.length) out.push(l.name);
  }
  return out;
}

/** A canonical key of `<address>/<length>` (IPv6 as a number). */
function addrKey(cidr: Cidr): string {
  const [a, len] = cidr.split("/");
  return a.includes(":") ? `${parseIpv6(a)}/${len}` : `${a}/${len}`;
}

function canonicalPrefix4(p: string): string {
  const x = parsePrefix4(p);
  return `${formatIpv4(x.network)}/${x.length}`;
}

/**
 * Every device's addresses: {@linkcode addrKey} → whether it is deprecated
 * (preferred lifetime 0).
 */
async function listAddrs(
  step: Step,
  signal?: AbortSignal,
): Promise<Map<string, Map<string, boolean>>> {
  const { stdout } = await step("list addresses", "ip", [
    "-j",
    "addr",
    "show",
  ], signal);
  const out = new Map<string, Map<string, boolean>>();
  for (
    const l of JSON.parse(stdout || "[]") as {
      ifname: string;
      addr_info?: {
        local?: string;
        prefixlen?: number;
        preferred_life_time?: number;
      }[];
    }[]
  ) {
    const keys = new Map<string, boolean>();
    for (const a of l.addr_info ?? []) {
      if (!a.local) continue;
      keys.set(
        addrKey(`${a.local}/${a.prefixlen}`),
        a.preferred_life_time === 0,
      );
    }
    out.set(l.ifname, keys);
  }
  return out;
}

/** A route: destination (canonical) and device. */
interface Route {
  dst: string;
  dev: string;
  /** Made by the kernel for an address (never ours to delete). */
  kernel: boolean;
}

/** The routes to prefixes of `table`, both families. */
async function listRoutes(
  table: "main" | number,
  step: Step,
  signal?: AbortSignal,
): Promise<Route[]> {
  const out: Route[] = [];
  for (const family of FAMILIES) {
    const { stdout } = await step("list routes", "ip", [
      "-j",
      family,
      "route",
      "show",
      // A table of no route is no error only with "all" (IPv4).
      "table",
      "all",
    ], signal);
    for (
      const r of JSON.parse(stdout || "[]") as {
        dst: string;
        dev?: string;
        protocol?: string;
        table?: string;
      }[]
    ) {
      if ((r.table ?? "main") !== String(table)) continue;
      if (!r.dev || r.dst === "default") continue;
      // ip prints the canonical text, without the length of a host route.
      const dst = r.dst.includes("/")
        ? r.dst
        : `${r.dst}/${family === "-6" ? 128 : 32}`;
      out.push({ dst, dev: r.dev, kernel: r.protocol === "kernel" });
    }
  }
  return out;
}
