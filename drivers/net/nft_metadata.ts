/**
 * The metadata service stays on its host: two base chains of the port
 * firewall's table `bridge ucloud` (drivers/net/nft.ts). Every host of a
 * private network holds the metadata addresses ({@linkcode METADATA}) on
 * the same segment (VXLAN), like the DHCP servers' addresses; a VM must
 * resolve and reach only its own host's, and no host may answer another
 * host's VMs.
 *
 * - `metadata-in` (bridge `input` hook: frames the bridge delivers to the
 *   host): a frame with an IPv6 or IPv4 destination of the service, an ARP
 *   packet asking for 169.254.169.254, or a neighbour solicitation whose
 *   target is a metadata address is dropped when it came in on any port
 *   that is not a VM's tap (`uct*`: VXLAN devices, DHCP veths, a public
 *   bridge's uplink).
 * - `metadata-out` (bridge `output` hook: frames the host sends, once per
 *   output port when flooded): a frame with a source address of the
 *   service (replies, neighbour solicitations and advertisements), an ARP
 *   packet from 169.254.169.254 or a neighbour advertisement for a
 *   metadata address is dropped on any port that is not a tap.
 *
 * Every rule counts what it drops (comments `metadata-in`/`metadata-out`);
 * the first rule's comment carries a fingerprint of the chain's rules, so
 * a re-sync leaves the chains (handles, counters) alone and a changed rule
 * set replaces them. The port chains already bind each source address to
 * its tap (`ip6-spoof`, `ip4-spoof`): with "metadata only from taps", the
 * source address a connection arrives from names the VM's tap.
 *
 * @example
 * ```ts
 * for (const c of metadataChains()) console.log(c.name, c.hook, c.rules);
 * ```
 *
 * @module
 */
import { parseIpv6 } from "../../core/netaddr.ts";
import { METADATA } from "./host_input.ts";
import { fnv1a32, TAP_PREFIX } from "./names.ts";

/** The base chain at the bridge `input` hook. */
export const META_IN = "metadata-in";
/** The base chain at the bridge `output` hook. */
export const META_OUT = "metadata-out";

/** A base chain: name, hook and `[body, comment]` rules. */
export interface HookedChain {
  name: string;
  hook: string;
  rules: [body: string, comment: string][];
}

/** The two chains, each rule's comment its chain's name (the first fingerprinted). */
export function metadataChains(): HookedChain[] {
  const meta6 = METADATA.ipv6.join(", ");
  const targets = `{ ${
    METADATA.ipv6.map((a) => "0x" + parseIpv6(a).toString(16).padStart(32, "0"))
      .join(", ")
  } }`;
  const v4 = METADATA.ipv4;
  /**
   * Frames on a port that is not a tap, in (`iifname`, to the metadata
   * addresses, NS for them) or out (`oifname`, from them, NA for them).
   */
  const rules = (dir: "iifname" | "oifname") => {
    const notTap = `${dir} != "${TAP_PREFIX}*"`;
    const [addr, nd] = dir === "iifname"
      ? ["daddr", "nd-neighbor-solicit"]
      : ["saddr", "nd-neighbor-advert"];
    return [
      `${notTap} ip6 ${addr} { ${meta6} } counter drop`,
      `${notTap} ip ${addr} ${v4} counter drop`,
      `${notTap} arp ${addr} ip ${v4} counter drop`,
      `${notTap} icmpv6 type ${nd} @th,64,128 ${targets} counter drop`,
    ];
  };
  const inRules = rules("iifname");
  const outRules = rules("oifname");
  return [
    chain(META_IN, "input", inRules),
    chain(META_OUT, "output", outRules),
  ];
}

function chain(name: string, hook: string, bodies: string[]): HookedChain {
  const fp = fnv1a32(`v1\n${hook}\n${bodies.join("\n")}`).toString(16)
    .padStart(8, "0");
  return {
    name,
    hook,
    rules: bodies.map((b, i) => [b, i ? name : `${name} fp=${fp}`]),
  };
}
