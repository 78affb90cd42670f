/**
 * Who a request comes from, for rate limits and logs: the connection's
 * address, or, when that is a trusted reverse proxy, the rightmost address
 * of `X-Forwarded-For` that is not itself a trusted proxy (everything left
 * of it was written by the client and proves nothing). And the bucket an
 * address is limited in: an IPv4 address on its own, an IPv6 address by
 * its /64 (one customer gets a whole /64 and picks addresses in it freely).
 * Pure; no I/O.
 *
 * @example
 * ```ts
 * const trusted = parseTrustedProxies(["2001:db8:1::/64", "10.0.0.1"]);
 * clientAddress("10.0.0.1", "2001:db8:9::5, 2001:db8:1::7", trusted); // "2001:db8:9::5"
 * addressBucket("2001:db8:9::5"); // "2001:db8:9::/64"
 * ```
 */
import { formatIpv6, parseIpv4, parseIpv6 } from "./netaddr.ts";

/** A trusted network as 128-bit IPv6 (IPv4 is mapped into ::ffff:0:0/96). */
export interface TrustedNet {
  network: bigint;
  length: number;
}

const V4_MAPPED = 0xffffn << 32n;

/** Parses an address (IPv4, IPv6, IPv4-mapped IPv6) into 128 bits, or null. */
function toBits(addr: string): { bits: bigint; v4: boolean } | null {
  try {
    if (/^\d+\.\d+\.\d+\.\d+$/.test(addr)) {
      return { bits: V4_MAPPED | BigInt(parseIpv4(addr)), v4: true };
    }
    const bits = parseIpv6(addr);
    return { bits, v4: bits >> 32n === 0xffffn };
  } catch {
    return null;
  }
}

/**
 * Parses CIDRs ("10.0.0.0/8", "2001:db8::/32") and bare addresses (one
 * host). Throws a TypeError naming the first bad entry.
 */
export function parseTrustedProxies(list: readonly string[]): TrustedNet[] {
  return list.map((entry) => {
    const [addr, len, extra] = entry.trim().split("/");
    const a = toBits(addr);
    const max = a?.v4 && !addr.includes(":") ? 32 : 128;
    const n = len === undefined ? max : Number(len);
    if (
      !a || extra !== undefined || !Number.isInteger(n) || n < 0 ||
      n > max || (len !== undefined && !/^\d{1,3}$/.test(len))
    ) {
      throw new TypeError(
        `Not an address or CIDR: ${JSON.stringify(entry)}`,
      );
    }
    const length = max === 32 ? n + 96 : n;
    const host = length === 128 ? 0n : (1n << BigInt(128 - length)) - 1n;
    return { network: a.bits & ~host, length };
  });
}

function trustedBy(bits: bigint, nets: readonly TrustedNet[]): boolean {
  return nets.some((n) => {
    const shift = BigInt(128 - n.length);
    return bits >> shift === n.network >> shift;
  });
}

/**
 * Whether `addr` (an IPv4 or IPv6 address, IPv4-mapped IPv6 included) is in
 * one of `nets`; false for text that is no address.
 */
export function addressIn(addr: string, nets: readonly TrustedNet[]): boolean {
  const a = toBits(addr);
  return a !== null && trustedBy(a.bits, nets);
}

/** "[2001:db8::1]:443" → "2001:db8::1"; "192.0.2.1:80" → "192.0.2.1". */
function stripPort(entry: string): string {
  const s = entry.trim();
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracket) return bracket[1];
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(s);
  return v4 ? v4[1] : s;
}

/** The canonical text of an address: IPv4-mapped IPv6 becomes IPv4. */
function canonical(bits: bigint, v4: boolean): string {
  if (!v4) return formatIpv6(bits);
  const n = Number(bits & 0xffffffffn);
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
}

/**
 * The client's address: `remote` (the connection's peer) unless it is a
 * trusted proxy; then, walking `X-Forwarded-For` from the right, the first
 * address that is not a trusted proxy. An entry that is no address stops
 * the walk at the proxy that wrote it; when every hop is trusted, the
 * leftmost is the client. Undefined when `remote` is.
 */
export function clientAddress(
  remote: string | undefined,
  forwardedFor: string | undefined,
  trusted: readonly TrustedNet[],
): string | undefined {
  if (remote === undefined) return undefined;
  const peer = toBits(stripPort(remote));
  if (!peer) return remote;
  let client = canonical(peer.bits, peer.v4);
  if (!trusted.length || !trustedBy(peer.bits, trusted)) return client;
  const hops = (forwardedFor ?? "").split(",").filter((h) => h.trim() !== "");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = toBits(stripPort(hops[i]));
    if (!hop) return client;
    client = canonical(hop.bits, hop.v4);
    if (!trustedBy(hop.bits, trusted)) return client;
  }
  return client;
}

/**
 * The rate-limit bucket of an address: an IPv4 address itself, the /64 of
 * an IPv6 address. Text that is no address is its own bucket.
 */
export function addressBucket(addr: string): string {
  const a = toBits(addr);
  if (!a) return addr;
  if (a.v4) return canonical(a.bits, true);
  return `${formatIpv6((a.bits >> 64n) << 64n)}/64`;
}
