/**
 * The host input policy: what VMs may send to the host itself, and where
 * VXLAN may come from. One table `inet ucloud_host`, apart from the port
 * firewall (`bridge ucloud`, drivers/net/nft.ts), made when the host has a
 * network and removed with its last one.
 *
 * Traffic counts as from VMs when it arrives on a private bridge (`ucb*`:
 * its ports are VM taps, the VXLAN device carrying other hosts' VMs, and
 * the DHCP veth), on a tap itself (`uct*`), or on a public bridge with the
 * source MAC of one of this host's ports (the port rules make that MAC
 * the only one a port can send; VMs of a public network on other hosts
 * reach this host through the admin's uplink like any neighbour on that
 * link). From VMs the host accepts only:
 * - neighbour solicitations and advertisements and router solicitations
 *   (radvd answers the RS; the VM resolves the router's address);
 * - ICMPv6 echo requests and replies and the errors RFC 4890 says a host
 *   must not drop (destination unreachable, packet too big, time
 *   exceeded, parameter problem): a VM can ping its router, and the host
 *   (the router of a public network) can ping its VMs and learn the path
 *   MTU of its own packets; the kernel matches errors against its own
 *   sockets and ignores the rest, so no listener is reachable this way;
 * - ICMP (IPv4) echo replies and errors, for the same reason (no echo
 *   requests: the host holds no IPv4 router address on VM networks);
 * - TCP to the metadata service's addresses and port ({@linkcode METADATA});
 *
 * and drops (and counts) everything else, IPv4 included. TCP to the
 * metadata service's addresses and port from anything else (the underlay,
 * a management NIC, a public bridge's other neighbours) is dropped and
 * counted (`metadata-off-vms`): the service identifies its callers by
 * source address, which is only a VM's on a VM's port. The service's
 * replies leave with hop limit (TTL) 1 (`output` hook, counted as
 * `metadata-hoplimit`): like IMDSv2's, they go no further than the VM,
 * which cannot forward them to anyone else. DHCP needs no
 * exception: each network's dnsmasq runs in its own namespace behind a
 * bridge port (drivers/net/dhcp.ts), so DHCP is bridged, never delivered
 * to the host. The rules are stateless: `ct state` would turn conntrack on
 * for the host, and every VXLAN flow (a source port per inner flow) would
 * then take a conntrack entry, with a full table dropping VXLAN. Packets
 * from private bridges and taps are never routed by the host either
 * (`forward` hook; radvd advertises no default route, but a VM may set
 * one, and the host routes when `net.ipv6.conf.all.forwarding` is on: a
 * VM could then reach other hosts' underlay addresses); a public network may have the host as its router, so its ports'
 * packets are left to the admin's routing.
 *
 * VXLAN (the driver's UDP port) is accepted only on the underlay device,
 * and only for a VNI this host has: for a unicast network only from that
 * network's peers (`<vni> . <source>` pairs), for a multicast network from
 * any source on the underlay (its members are not known at this layer: any
 * VTEP that joined the group may send, and after learning, to the host's
 * address). Without an underlay the host has no VXLAN device and the
 * policy leaves the VXLAN port alone; with one, the host's IPv6 VXLAN port
 * is ucloud's (the kernel shares one socket among all VXLAN devices of a
 * port, so another VXLAN user's VNIs would be dropped as unknown).
 *
 * `planHostInput(current, spec)` writes one `nft -f -` transaction: only
 * set elements change when ports, VNIs or peers change; the chains are
 * rebuilt (table deleted and made again, in the same transaction) only
 * when their rules differ, which a fingerprint in the first rule's
 * comment tells. A re-sync thus keeps every rule handle and counter.
 *
 * @example
 * ```ts
 * const spec = hostInputSpec({ networks, ports, peers, underlay: "eth0", vxlanPort: 4789 });
 * await applyHostInput(exec, spec, { signal });
 * await applyHostInput(exec, null, { signal }); // removes the table
 * ```
 *
 * @module
 */
import { normalizeMac, parseIpv6 } from "../../core/netaddr.ts";
import {
  BRIDGE_PREFIX,
  checkDeviceName,
  fnv1a32,
  TAP_PREFIX,
} from "./names.ts";
import {
  elementKey,
  type HostTable,
  parseHostTable,
} from "./host_input_table.ts";
import type { Exec, NetworkSpec, PortSpec } from "./types.ts";

/** The nftables table (family inet) of the host input policy. */
export const HOST_TABLE = "ucloud_host";

/**
 * Where the metadata service listens (EC2's IPv4 and IPv6 addresses,
 * OpenStack's IPv6 one; see DESIGN.md): the only TCP a VM may send to the
 * host. The driver puts them on every bridge of a network this host has
 * (drivers/net/bridge_addrs.ts); the worker's service listens on them.
 */
export const METADATA = {
  port: 80,
  ipv6: ["fe80::a9fe:a9fe", "fd00:ec2::254"],
  ipv4: "169.254.169.254",
} as const;

/** What the policy depends on; see {@linkcode hostInputSpec}. */
export interface HostInputSpec {
  /** The underlay device; null: no VXLAN accepted. */
  underlay: string | null;
  vxlanPort: number;
  /** MACs of this host's ports on public networks. */
  publicMacs: string[];
  /** Unicast VNIs with each allowed source: `[vni, underlay address]`. */
  unicast: [number, string][];
  /** Multicast VNIs. */
  multicast: number[];
}

/** The policy's inputs from what the driver syncs. */
export function hostInputSpec(o: {
  networks: NetworkSpec[];
  ports: PortSpec[];
  peers: Record<string, string[]>;
  underlay: string | null;
  vxlanPort: number;
}): HostInputSpec {
  if (o.underlay) checkDeviceName(o.underlay);
  const byId = new Map(o.networks.map((n) => [n.id, n]));
  const spec: HostInputSpec = {
    underlay: o.underlay,
    vxlanPort: o.vxlanPort,
    publicMacs: [],
    unicast: [],
    multicast: [],
  };
  for (const p of o.ports) {
    if (byId.get(p.network)?.kind === "public") {
      spec.publicMacs.push(normalizeMac(p.mac));
    }
  }
  for (const n of o.networks) {
    if (n.kind !== "private" || n.vni === undefined) continue;
    if ((n.mode ?? "multicast") === "multicast") spec.multicast.push(n.vni);
    else {
      for (const a of o.peers[n.id] ?? []) spec.unicast.push([n.vni, a]);
    }
  }
  return spec;
}

const T = `inet ${HOST_TABLE}`;
/** VNI of a VXLAN packet: bits 32-55 after the UDP header. */
const VNI = "@th,96,24";
const SETS = {
  publicMacs: "public_macs",
  unicast: "vxlan_unicast",
  multicast: "vxlan_multicast",
} as const;

/** A chain: name, hook (base chains) and `[body, comment]` rules. */
interface Chain {
  name: string;
  hook?: string;
  rules: [body: string, comment: string][];
}

/** The chains of the policy. */
function chains(spec: HostInputSpec): Chain[] {
  const meta6 = METADATA.ipv6.join(", ");
  const input: Chain = {
    name: "input",
    hook: "input",
    rules: [
      [`iifname "${BRIDGE_PREFIX}*" jump from-vms`, "private-bridges"],
      [`iifname "${TAP_PREFIX}*" jump from-vms`, "taps"],
      [`ether saddr @${SETS.publicMacs} jump from-vms`, "public-ports"],
      // The service is for VMs: not for the underlay, a management NIC
      // or anyone else routing its addresses to this host.
      [
        `ip6 daddr { ${meta6} } tcp dport ${METADATA.port} counter drop`,
        "metadata-off-vms",
      ],
      [
        `ip daddr ${METADATA.ipv4} tcp dport ${METADATA.port} counter drop`,
        "metadata-off-vms",
      ],
    ],
  };
  const out: Chain[] = [input, {
    name: "output",
    hook: "output",
    rules: [
      [
        `ip6 saddr { ${meta6} } tcp sport ${METADATA.port} counter ip6 hoplimit set 1`,
        "metadata-hoplimit",
      ],
      [
        `ip saddr ${METADATA.ipv4} tcp sport ${METADATA.port} counter ip ttl set 1`,
        "metadata-hoplimit",
      ],
    ],
  }, {
    name: "forward",
    hook: "forward",
    rules: [
      // Bridged frames pass here too when br_netfilter is loaded, with
      // the bridge as in and out device: only routing out is dropped.
      [
        `iifname "${BRIDGE_PREFIX}*" oifname != "${BRIDGE_PREFIX}*" counter drop`,
        "routed-from-vms",
      ],
      [`iifname "${TAP_PREFIX}*" counter drop`, "routed-from-vms"],
    ],
  }, {
    name: "from-vms",
    rules: [
      [
        `icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } counter accept`,
        "nd",
      ],
      [
        `icmpv6 type { echo-request, echo-reply, destination-unreachable, packet-too-big, time-exceeded, parameter-problem } counter accept`,
        "icmpv6",
      ],
      [
        `icmp type { echo-reply, destination-unreachable, time-exceeded, parameter-problem } counter accept`,
        "icmp",
      ],
      [
        `ip6 daddr { ${meta6} } tcp dport ${METADATA.port} counter accept`,
        "metadata",
      ],
      [
        `ip daddr ${METADATA.ipv4} tcp dport ${METADATA.port} counter accept`,
        "metadata",
      ],
      [`counter drop`, "from-vms"],
    ],
  }];
  // ucloud's VXLAN is IPv6 only; without an underlay it has none.
  if (spec.underlay) {
    input.rules.push([
      `meta nfproto ipv6 udp dport ${spec.vxlanPort} jump vxlan`,
      "vxlan",
    ]);
    out.push({
      name: "vxlan",
      rules: [
        [`iifname != "${spec.underlay}" counter drop`, "vxlan-off-underlay"],
        [`${VNI} . ip6 saddr @${SETS.unicast} counter accept`, "vxlan-unicast"],
        [`${VNI} @${SETS.multicast} counter accept`, "vxlan-multicast"],
        [`counter drop`, "vxlan-unknown"],
      ],
    });
  }
  return out;
}

/** The wanted elements per set: canonical key → nft text. */
function wantedElements(spec: HostInputSpec): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  const put = (set: string, key: string, text: string) => {
    if (!out.has(set)) out.set(set, new Map());
    out.get(set)!.set(key, text);
  };
  for (const set of Object.values(SETS)) out.set(set, new Map());
  for (const m of spec.publicMacs) put(SETS.publicMacs, elementKey(m), m);
  if (!spec.underlay) return out;
  for (const [vni, addr] of spec.unicast) {
    const a = parseIpv6(addr);
    put(SETS.unicast, `${vni} . ${a.toString(16)}`, `${vni} . ${addr}`);
  }
  for (const vni of spec.multicast) put(SETS.multicast, String(vni), `${vni}`);
  return out;
}

/**
 * The script turning `current` (null: no table) into the wanted policy,
 * or into no table when `spec` is null; "" when nothing is to change.
 */
export function planHostInput(
  current: HostTable | null,
  spec: HostInputSpec | null,
): string {
  if (!spec) return current ? `delete table ${T}\n` : "";
  const cs = chains(spec);
  const fp = fnv1a32(
    `v1\n${JSON.stringify(cs.map((c) => [c.name, c.hook, c.rules]))}`,
  ).toString(16).padStart(8, "0");
  const head = (c: string) => `${c} fp=${fp}`;
  const wantComments = new Map(
    cs.map((c) => [c.name, c.rules.map(([, m], i) => i ? m : head(m))]),
  );
  const same = current && current.comments.size === cs.length &&
    cs.every((c) =>
      sameList(current.comments.get(c.name), wantComments.get(c.name)!)
    ) &&
    Object.values(SETS).every((s) => current.elements.has(s));
  const lines: string[] = [];
  const wanted = wantedElements(spec);
  if (!same) {
    if (current) lines.push(`delete table ${T}`);
    lines.push(
      `add table ${T}`,
      `add set ${T} ${SETS.publicMacs} { type ether_addr; }`,
      `add set ${T} ${SETS.unicast} { typeof ${VNI} . ip6 saddr; }`,
      `add set ${T} ${SETS.multicast} { typeof ${VNI}; }`,
    );
    for (const c of cs) {
      lines.push(
        c.hook
          ? `add chain ${T} ${c.name} { type filter hook ${c.hook} priority filter; policy accept; }`
          : `add chain ${T} ${c.name}`,
      );
    }
    for (const c of cs) {
      for (const [i, [body, comment]] of c.rules.entries()) {
        lines.push(
          `add rule ${T} ${c.name} ${body} comment "${
            i ? comment : head(comment)
          }"`,
        );
      }
    }
  }
  for (const [set, want] of wanted) {
    const have = same ? current.elements.get(set)! : new Set<string>();
    const del = [...have].filter((k) => !want.has(k));
    const add = [...want].filter(([k]) => !have.has(k)).map(([, v]) => v);
    if (del.length) {
      // Deleting needs the element's text: the canonical key is not nft
      // syntax for addresses, so the set is flushed and filled again.
      lines.push(`flush set ${T} ${set}`);
      add.splice(0, add.length, ...want.values());
    }
    if (add.length) {
      lines.push(`add element ${T} ${set} { ${add.join(", ")} }`);
    }
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

/** The table as the kernel has it, through `exec`; null when absent. */
export async function readHostInput(
  exec: Exec,
  signal?: AbortSignal,
): Promise<HostTable | null> {
  try {
    const { stdout } = await exec("nft", [
      "-j",
      "list",
      "table",
      "inet",
      HOST_TABLE,
    ], {
      signal,
      timeoutMs: 30_000,
    });
    return parseHostTable(stdout);
  } catch (err) {
    if (/No such file or directory/.test(String(err))) return null;
    throw new Error(`Cannot read table ${T}`, { cause: err });
  }
}

/**
 * Makes the kernel's table what `spec` wants (null: no table); returns
 * whether anything was changed.
 */
export async function applyHostInput(
  exec: Exec,
  spec: HostInputSpec | null,
  { signal }: { signal?: AbortSignal } = {},
): Promise<boolean> {
  const script = planHostInput(await readHostInput(exec, signal), spec);
  if (!script) return false;
  try {
    await exec("nft", ["-f", "-"], {
      signal,
      timeoutMs: 30_000,
      stdin: script,
    });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`Cannot apply host input policy (table ${T}): ${msg}`, {
      cause: err,
    });
  }
  return true;
}

function sameList(a: string[] | undefined, b: string[]): boolean {
  return !!a && a.length === b.length && a.every((x, i) => x === b[i]);
}
