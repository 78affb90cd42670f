/**
 * Which addresses an image URL may reach (issue 11): not loopback,
 * link-local, private (RFC 1918, ULA), CGNAT, unspecified, multicast,
 * broadcast, reserved, or a cloud metadata address, unless an admin allows
 * private URLs. Pure: the fetch task (tasks/image_fetch.ts) checks every
 * resolved address with it, the API checks address literals at create.
 *
 * @example
 * ```ts
 * blockedAddress("169.254.169.254"); // "metadata"
 * blockedAddress("2001:db8::1"); // null (allowed)
 * literalHost(new URL("http://[::1]/x")); // "::1"
 * ```
 */
import { parseIpv4, parseIpv6 } from "./netaddr.ts";

/** IPv4 ranges refused, as [network, prefix length, what]. */
const V4: [string, number, string][] = [
  ["169.254.169.254", 32, "metadata"],
  ["0.0.0.0", 8, "unspecified"],
  ["127.0.0.0", 8, "loopback"],
  ["10.0.0.0", 8, "private"],
  ["172.16.0.0", 12, "private"],
  ["192.168.0.0", 16, "private"],
  ["100.64.0.0", 10, "CGNAT"],
  ["169.254.0.0", 16, "link-local"],
  ["192.0.0.0", 24, "reserved"],
  ["198.18.0.0", 15, "reserved"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];

/** IPv6 ranges refused (IPv4-mapped and NAT64 ones are checked as IPv4). */
const V6: [string, number, string][] = [
  ["fd00:ec2::254", 128, "metadata"],
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["fe80::", 10, "link-local"],
  ["fec0::", 10, "link-local"],
  ["fc00::", 7, "private"],
  ["ff00::", 8, "multicast"],
  ["100::", 64, "reserved"],
  ["2001:db8::", 32, "reserved"],
  ["::", 96, "reserved"],
];

const inV4 = (n: number, net: string, len: number) =>
  len === 0 || Math.floor(n / 2 ** (32 - len)) ===
    Math.floor(parseIpv4(net) / 2 ** (32 - len));

const inV6 = (n: bigint, net: string, len: number) =>
  (n >> BigInt(128 - len)) === (parseIpv6(net) >> BigInt(128 - len));

/**
 * Why `address` (IPv4 dotted or IPv6, without brackets) may not be
 * fetched from ("loopback", "private", "metadata", ...), or null when it
 * may. Throws TypeError for text that is no address.
 */
export function blockedAddress(address: string): string | null {
  if (!address.includes(":")) {
    const n = parseIpv4(address);
    for (const [net, len, what] of V4) if (inV4(n, net, len)) return what;
    return null;
  }
  const n = parseIpv6(address);
  // ::ffff:a.b.c.d and 64:ff9b::a.b.c.d reach that IPv4 address.
  const mapped = n >> 32n === 0xffffn || n >> 32n === 0x64ff9b0000000000000000n;
  if (mapped) {
    const v4 = Number(n & 0xffffffffn);
    const dotted = [24, 16, 8, 0].map((s) => (v4 >>> s) & 255).join(".");
    return blockedAddress(dotted);
  }
  for (const [net, len, what] of V6) if (inV6(n, net, len)) return what;
  return null;
}

/**
 * The host of `url` when it is an address literal (brackets removed), or
 * null for a host name. WHATWG URL parsing has already turned forms like
 * `http://2130706433/` or `http://0x7f.1/` into dotted IPv4.
 */
export function literalHost(url: URL): string | null {
  const h = url.hostname;
  if (h.startsWith("[") && h.endsWith("]")) return h.slice(1, -1);
  return /^\d+\.\d+\.\d+\.\d+$/.test(h) ? h : null;
}

/** Why `url` is never fetched (not http/https, credentials), or null. */
export function schemeProblem(url: URL): string | null {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `only http and https URLs are fetched, not ${url.protocol}`;
  }
  if (url.username || url.password) {
    return "URLs with credentials are not fetched";
  }
  return null;
}

/**
 * Why `url` is refused before any lookup (`schemeProblem()`, or an
 * address literal that `blockedAddress()` refuses), or null.
 */
export function refusedUrl(url: URL): string | null {
  const scheme = schemeProblem(url);
  if (scheme) return scheme;
  const literal = literalHost(url);
  const why = literal === null ? null : blockedAddress(literal);
  return why ? `${literal} is a ${why} address` : null;
}
