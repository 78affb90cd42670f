/**
 * The port firewall as nftables text, built without I/O. One table
 * `bridge ucloud`: a base chain at the bridge `prerouting` hook sends each
 * frame through `iifname vmap @ports` to the chain of the port it came in
 * on (`nic-<port>`), and drops frames of any unknown port named `uct*`
 * (fail-closed). Prerouting, not forward: the bridge learns source MACs
 * after prerouting, so a frame with a spoofed MAC dropped only at forward
 * would still move the victim's MAC to the spoofer's port in the bridge's
 * FDB. Prerouting also covers frames to the host itself, except those to
 * the reserved group `01:80:c2:00:00:0x`, which the bridge handles before
 * prerouting: the ports' chains in `netdev ucloud` drop them
 * (drivers/net/nft_ingress.ts).
 *
 * A second base chain `dhcp-local` at the bridge `forward` hook keeps each
 * host's DHCP servers (drivers/net/dhcp.ts) to this host's VMs: frames
 * from a DHCP namespace's port (`ucd*`) to any port that is not a VM's
 * tap (`uct*`: VXLAN devices, a public bridge's uplink) are dropped, and
 * so are frames to a `ucd*` port from anything but a tap. Every host with
 * a network runs its own server with the same addresses; none of them
 * hears or answers another host's VMs. (Flooded frames pass the forward
 * hook once per output port, so a broadcast still reaches local VMs.) The
 * metadata service stays local the same way, at the bridge `input` and
 * `output` hooks (drivers/net/nft_metadata.ts).
 *
 * `planTable(current, wanted)` compares the table read from the kernel
 * with the wanted port rules and writes ONE script for `nft -f -` (one
 * atomic transaction) that touches only new, changed and removed ports:
 * a port chain whose first rule's comment carries the fingerprint of the
 * wanted rules (and whose rule comments are as wanted) is left alone, so
 * its counters and rule handles survive every re-sync.
 *
 * @example
 * ```ts
 * const rules = portRules(net, port);
 * const plan = planTable(parseTable(await nftJson()), [rules]);
 * if (plan.script) await run("nft", ["-f", "-"], { stdin: plan.script });
 * ```
 *
 * @module
 */
import {
  formatIpv4,
  formatIpv6,
  linkLocal,
  normalizeMac,
  parseIpv4,
  parseIpv6,
  parsePrefix4,
  parsePrefix6,
} from "../../core/netaddr.ts";
import {
  DHCP_PREFIX,
  fnv1a32,
  NFT_TABLE,
  nicChain,
  TAP_PREFIX,
} from "./names.ts";
import type { NetworkSpec, PortSpec } from "./types.ts";
import { type NftTable, PORTS_MAP } from "./nft_table.ts";
import { type HookedChain, metadataChains } from "./nft_metadata.ts";

export {
  type NftChain,
  type NftRule,
  type NftTable,
  parseTable,
} from "./nft_table.ts";

/** The base chain hooked at bridge prerouting. */
export const BASE_CHAIN = "from-ports";
/** The base chain hooked at bridge forward: DHCP servers stay local. */
export const DHCP_CHAIN = "dhcp-local";
export { PORTS_MAP };
/** Bridge family priority `filter`, as `nft -j` prints it. */
const FILTER_PRIO = -200;

const T = `bridge ${NFT_TABLE}`;
const BASE_RULES: [body: string, comment: string][] = [
  [`iifname vmap @${PORTS_MAP}`, "ports"],
  [`iifname "${TAP_PREFIX}*" counter drop`, "fail-closed"],
];
const DHCP_RULES: [body: string, comment: string][] = [
  [
    `iifname "${DHCP_PREFIX}*" oifname != "${TAP_PREFIX}*" counter drop`,
    "dhcp-out",
  ],
  [
    `oifname "${DHCP_PREFIX}*" iifname != "${TAP_PREFIX}*" counter drop`,
    "dhcp-in",
  ],
];
/** The base chains: name, hook and rules. */
const HOOKED: HookedChain[] = [
  { name: BASE_CHAIN, hook: "prerouting", rules: BASE_RULES },
  { name: DHCP_CHAIN, hook: "forward", rules: DHCP_RULES },
  ...metadataChains(),
];

/** The rules of one port's chain. */
export interface PortRules {
  port: string;
  chain: string;
  /** Hash of the rule bodies; kept in the first rule's comment. */
  fingerprint: string;
  /** Rule bodies in order, each ending in its `comment "..."`. */
  rules: string[];
  /** The comment of each rule, in order. */
  comments: string[];
}

/**
 * The addresses no port may claim (as a source, NA target or ARP sender):
 * the metadata service (`169.254.169.254`, `fd00:ec2::254`,
 * `fe80::a9fe:a9fe`) and the network's own server address
 * (`<prefix>::1`, `<subnet+1>`: DHCP, later the router).
 */
export function serviceAddresses(net: NetworkSpec): string[] {
  const out = ["169.254.169.254", "fd00:ec2::254", "fe80::a9fe:a9fe"];
  out.push(formatIpv6(parsePrefix6(net.prefix).network | 1n));
  if (net.ipv4) out.push(formatIpv4(parsePrefix4(net.ipv4).network + 1));
  return out;
}

/**
 * The chain of `port` on `net`. Every rule counts what it matches and has
 * a comment naming its case: `mac-spoof`, `ip4-none` (IPv4/ARP on an
 * IPv6-only network or from a port without IPv4), `ethertype` (anything
 * but IPv6/IPv4/ARP, e.g. VLAN tags), `ip6-spoof` (a source other than
 * the port's address and its EUI-64 link-local), `ip6-unspec` (`::` as a
 * source for anything but MLD reports and the duplicate address detection
 * of the port's own addresses), `nd-spoof` (neighbour advertisements for
 * another target), `ra`, `nd-redirect`, `dhcp6-server` (anything to UDP
 * port 546), and on legacy networks `arp-malformed`, `arp-spoof` (two
 * rules: sender MAC, sender IP), `ip4-spoof`, `ip4-unspec` (`0.0.0.0` as
 * the source of anything but DHCP requests, IGMP reports and ARP probes for
 * the port's own address), `dhcp4-server` (anything to
 * UDP port 68), `dhcp4-chaddr` (two rules: a DHCP client message whose
 * client hardware address is not the port's MAC, or that is fragmented);
 * the last rule (`allowed`)
 * accepts the rest. Throws a TypeError for a port holding one of the
 * {@linkcode serviceAddresses}.
 */
export function portRules(net: NetworkSpec, port: PortSpec): PortRules {
  const chain = nicChain(port.name);
  const mac = normalizeMac(port.mac);
  const v6 = parseIpv6(port.ipv6);
  const v6text = formatIpv6(v6);
  const ll = linkLocal(mac);
  const v4 = net.ipv4 && port.ipv4 ? port.ipv4 : undefined;
  if (v4) {
    parsePrefix4(net.ipv4!);
    // Canonical only: nft resolves what is not an address as a host name
    // (300.1.1.1) and may read a leading zero as octal.
    if (!canonicalIpv4(v4)) {
      throw new TypeError(`Port ${port.name}: bad IPv4 address ${v4}`);
    }
  }
  for (const a of serviceAddresses(net)) {
    if (a === v6text || a === v4) {
      throw new TypeError(
        `Port ${port.name}: ${a} is a service address of network ${net.id}`,
      );
    }
  }
  const hex128 = (n: bigint) => "0x" + n.toString(16).padStart(32, "0");
  const own6 = `{ ${hex128(parseIpv6(ll))}, ${hex128(v6)} }`;
  const body: [string, string][] = [
    [`ether saddr != ${mac} counter drop`, "mac-spoof"],
  ];
  if (!v4) body.push([`ether type { ip, arp } counter drop`, "ip4-none"]);
  body.push(
    [`ether type != { ip6, ip, arp } counter drop`, "ethertype"],
    [`ip6 saddr != { ::, ${ll}, ${v6text} } counter drop`, "ip6-spoof"],
    [`ip6 saddr :: meta l4proto != ipv6-icmp counter drop`, "ip6-unspec"],
    [
      `ip6 saddr :: icmpv6 type != { nd-neighbor-solicit, mld-listener-report, mld2-listener-report } counter drop`,
      "ip6-unspec",
    ],
    [
      `ip6 saddr :: icmpv6 type nd-neighbor-solicit @th,64,128 != ${own6} counter drop`,
      "ip6-unspec",
    ],
    [
      `icmpv6 type nd-neighbor-advert @th,64,128 != ${own6} counter drop`,
      "nd-spoof",
    ],
    [`icmpv6 type nd-router-advert counter drop`, "ra"],
    [`icmpv6 type nd-redirect counter drop`, "nd-redirect"],
    [`udp dport 546 counter drop`, "dhcp6-server"],
  );
  if (v4) {
    const chaddr = "0x" + mac.replaceAll(":", "");
    body.push(
      [
        `arp htype . arp ptype . arp hlen . arp plen != { 1 . ip . 6 . 4 } counter drop`,
        "arp-malformed",
      ],
      [`arp saddr ether != ${mac} counter drop`, "arp-spoof"],
      [`arp saddr ip != { 0.0.0.0, ${v4} } counter drop`, "arp-spoof"],
      [`ip saddr != { 0.0.0.0, ${v4} } counter drop`, "ip4-spoof"],
      // 0.0.0.0 only for ARP probes of the port's own address (address
      // conflict detection), DHCP requests and IGMP reports.
      [
        `arp saddr ip 0.0.0.0 arp daddr ip != ${v4} counter drop`,
        "ip4-unspec",
      ],
      [
        `ip saddr 0.0.0.0 meta l4proto != { udp, igmp } counter drop`,
        "ip4-unspec",
      ],
      [`ip saddr 0.0.0.0 udp dport != 67 counter drop`, "ip4-unspec"],
      [`udp dport 68 counter drop`, "dhcp4-server"],
      // chaddr: UDP header (8 bytes) + 28 bytes into the BOOTP header;
      // never in a later fragment (no first fragment, no reassembly).
      [`ip frag-off & 0x2000 != 0 udp dport 67 counter drop`, "dhcp4-chaddr"],
      [`udp dport 67 @th,288,48 != ${chaddr} counter drop`, "dhcp4-chaddr"],
    );
  }
  body.push([`counter accept`, "allowed"]);
  const rules = body.map(([b, c]) => `${b} comment "${c}"`);
  const fingerprint = fnv1a32(`v2\n${rules.join("\n")}`).toString(16)
    .padStart(8, "0");
  const head = `port ${port.name} fp=${fingerprint}`;
  return {
    port: port.name,
    chain,
    fingerprint,
    rules: [`counter comment "${head}"`, ...rules],
    comments: [head, ...body.map(([, c]) => c)],
  };
}

/** What {@linkcode planTable} decided. */
export interface NftPlan {
  /** Input for `nft -f -`; "" when the table is as wanted. */
  script: string;
  /** Chains created. */
  added: string[];
  /** Chains whose rules were replaced (port spec changed). */
  changed: string[];
  /** Chains deleted. */
  removed: string[];
}

/**
 * The one transaction that turns `current` (null: no table) into a table
 * with the base chains and exactly the `wanted` port chains. Chains already
 * holding their wanted rules and map elements already present are not
 * touched. Chains of ports not wanted (and any other hooked chain) are
 * deleted; their map elements first. The chains and map elements of the
 * ports in `hold` are left exactly as they are, whatever they hold.
 */
export function planTable(
  current: NftTable | null,
  wanted: PortRules[],
  hold: ReadonlySet<string> = new Set(),
): NftPlan {
  const head: string[] = [];
  const delElements: string[] = [];
  const delChains: string[] = [];
  const addChains: string[] = [];
  const addElements: string[] = [];
  const plan: NftPlan = { script: "", added: [], changed: [], removed: [] };

  if (!current) head.push(`add table ${T}`);
  if (!current?.hasMap) {
    head.push(`add map ${T} ${PORTS_MAP} { type ifname : verdict; }`);
  }
  for (const { name, hook, rules } of HOOKED) {
    const have = current?.chains.get(name);
    const ok = have && have.hook === hook && have.prio === FILTER_PRIO &&
      have.policy === "accept" &&
      sameList(have.rules.map((r) => r.comment), rules.map(([, c]) => c));
    if (ok) continue;
    if (have && (have.hook !== hook || have.prio !== FILTER_PRIO)) {
      head.push(`delete chain ${T} ${name}`);
    }
    head.push(
      `add chain ${T} ${name} { type filter hook ${hook} priority filter; policy accept; }`,
    );
    if (have) head.push(`flush chain ${T} ${name}`);
    for (const [body, comment] of rules) {
      head.push(`add rule ${T} ${name} ${body} comment "${comment}"`);
    }
  }

  const want = new Map<string, PortRules>();
  for (const w of wanted) {
    if (want.has(w.port)) throw new TypeError(`Duplicate port ${w.port}`);
    want.set(w.port, w);
  }
  const wantedChains = new Set([...want.values()].map((w) => w.chain));
  const heldChains = new Set([...hold].map((p) => `nic-${p}`));

  for (const [port, target] of current?.ports ?? []) {
    if (hold.has(port) && !want.has(port)) continue;
    const w = want.get(port);
    if (!w || w.chain !== target) {
      delElements.push(`delete element ${T} ${PORTS_MAP} { "${port}" }`);
    }
  }
  for (const chain of current?.chains.values() ?? []) {
    if (HOOKED.some((h) => h.name === chain.name)) continue;
    if (wantedChains.has(chain.name) || heldChains.has(chain.name)) continue;
    delChains.push(
      `flush chain ${T} ${chain.name}`,
      `delete chain ${T} ${chain.name}`,
    );
    plan.removed.push(chain.name);
  }
  for (const w of want.values()) {
    const have = current?.chains.get(w.chain);
    const same = have && !have.hook &&
      sameList(have.rules.map((r) => r.comment), w.comments);
    if (!same) {
      if (have) {
        addChains.push(`flush chain ${T} ${w.chain}`);
        // A hooked chain of that name (not ours) cannot be jumped to.
        if (have.hook) {
          addChains.push(
            `delete chain ${T} ${w.chain}`,
            `add chain ${T} ${w.chain}`,
          );
        }
        plan.changed.push(w.chain);
      } else {
        addChains.push(`add chain ${T} ${w.chain}`);
        plan.added.push(w.chain);
      }
      for (const r of w.rules) addChains.push(`add rule ${T} ${w.chain} ${r}`);
    }
    if (current?.ports.get(w.port) !== w.chain) {
      addElements.push(
        `add element ${T} ${PORTS_MAP} { "${w.port}" : jump ${w.chain} }`,
      );
    }
  }
  const lines = [
    ...head,
    ...delElements,
    ...delChains,
    ...addChains,
    ...addElements,
  ];
  plan.script = lines.length ? lines.join("\n") + "\n" : "";
  return plan;
}

/** The script removing the whole table. */
export function deleteTableScript(): string {
  return `delete table ${T}\n`;
}

function canonicalIpv4(v4: string): boolean {
  try {
    return formatIpv4(parseIpv4(v4)) === v4;
  } catch {
    return false;
  }
}

function sameList(a: (string | undefined)[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
