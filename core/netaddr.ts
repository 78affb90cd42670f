/**
 * Pure address arithmetic for networks: IPv6 prefixes, EUI-64 addresses
 * from MACs, locally administered MACs, VXLAN multicast groups and IPv4
 * subnets. No I/O; every function throws a TypeError naming the bad value.
 *
 * @example
 * ```ts
 * const prefix = nthPrefix("fdc1:d00::/48", 5); // "fdc1:d00:0:5::/64"
 * eui64(prefix, "02:c1:0d:12:34:56"); // "fdc1:d00:0:5:c1:dff:fe12:3456"
 * ```
 */

/** Locally administered, unicast: the first octet of every ucloud MAC. */
export const MAC_PREFIX = "02:c1:0d";
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Parses an IPv6 address (no zone, no brackets) into a 128-bit bigint. */
export function parseIpv6(addr: string): bigint {
  if (typeof addr !== "string" || !/^[0-9a-fA-F:.]+$/.test(addr)) {
    throw new TypeError(`Not an IPv6 address: ${JSON.stringify(addr)}`);
  }
  let s = addr.toLowerCase();
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = s.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const n = parseIpv4(v4[2]);
    s = `${v4[1]}${Math.floor(n / 65536).toString(16)}:${
      (n % 65536).toString(16)
    }`;
  }
  const halves = s.split("::");
  if (halves.length > 2) {
    throw new TypeError(`Not an IPv6 address: ${JSON.stringify(addr)}`);
  }
  const part = (p: string) => (p === "" ? [] : p.split(":"));
  const head = part(halves[0]);
  const tail = halves.length === 2 ? part(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if (
    (halves.length === 2 && fill < 1) || (halves.length === 1 && fill !== 0)
  ) {
    throw new TypeError(`Not an IPv6 address: ${JSON.stringify(addr)}`);
  }
  const groups = [
    ...head,
    ...Array(halves.length === 2 ? fill : 0).fill("0"),
    ...tail,
  ];
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) {
      throw new TypeError(`Not an IPv6 address: ${JSON.stringify(addr)}`);
    }
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

/** Formats a 128-bit bigint as an RFC 5952 IPv6 address. */
export function formatIpv6(n: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) {
    groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  }
  // The longest run of two or more zero groups becomes "::" (first wins).
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${
    hex.slice(best + bestLen).join(":")
  }`;
}

/** A parsed IPv6 prefix. */
export interface Prefix6 {
  network: bigint;
  length: number;
}

/** Parses "addr/len"; the address must have no bits beyond the length. */
export function parsePrefix6(prefix: string): Prefix6 {
  const m = typeof prefix === "string"
    ? prefix.match(/^([^/]+)\/(\d{1,3})$/)
    : null;
  if (!m) throw new TypeError(`Not an IPv6 prefix: ${JSON.stringify(prefix)}`);
  const length = Number(m[2]);
  if (length > 128) {
    throw new TypeError(`Not an IPv6 prefix: ${JSON.stringify(prefix)}`);
  }
  const network = parseIpv6(m[1]);
  const host = length === 128 ? 0n : (1n << BigInt(128 - length)) - 1n;
  if ((network & host) !== 0n) {
    throw new TypeError(
      `IPv6 prefix ${prefix} has bits set after /${length}; did you mean ${
        formatPrefix6({ network: network & ~host, length })
      }?`,
    );
  }
  return { network, length };
}

export function formatPrefix6(p: Prefix6): string {
  return `${formatIpv6(p.network)}/${p.length}`;
}

/** The canonical text of a prefix (e.g. "FDC1:0D00:0:5:0::/64" → "fdc1:d00:0:5::/64"). */
export function canonicalPrefix6(prefix: string): string {
  return formatPrefix6(parsePrefix6(prefix));
}

/** How many /64s a pool holds (capped at 2^32: more are never needed). */
export function prefixCount(pool: string): number {
  const { length } = parsePrefix6(pool);
  if (length > 64) throw new TypeError(`Pool ${pool} is smaller than a /64`);
  return 64 - length >= 32 ? 2 ** 32 : 2 ** (64 - length);
}

/** The `index`th /64 of `pool` (index from 0). */
export function nthPrefix(pool: string, index: number): string {
  const p = parsePrefix6(pool);
  if (p.length > 64) throw new TypeError(`Pool ${pool} is smaller than a /64`);
  if (!Number.isInteger(index) || index < 0 || index >= prefixCount(pool)) {
    throw new RangeError(`Pool ${pool} has no /64 number ${index}`);
  }
  return formatPrefix6({
    network: p.network | (BigInt(index) << 64n),
    length: 64,
  });
}

/** Whether `addr` lies inside `prefix`. */
export function inPrefix6(addr: string, prefix: string): boolean {
  const p = parsePrefix6(prefix);
  const shift = BigInt(128 - p.length);
  return (parseIpv6(addr) >> shift) === (p.network >> shift);
}

/** Validates and lower-cases a MAC address ("aa:bb:cc:dd:ee:ff"). */
export function normalizeMac(mac: string): string {
  const m = typeof mac === "string"
    ? mac.toLowerCase().replaceAll("-", ":")
    : "";
  if (!MAC_RE.test(m)) {
    throw new TypeError(`Not a MAC address: ${JSON.stringify(mac)}`);
  }
  return m;
}

/** A random MAC under {@linkcode MAC_PREFIX} (locally administered, unicast). */
export function randomMac(
  random: () => Uint8Array = () => crypto.getRandomValues(new Uint8Array(3)),
): string {
  const b = random();
  return `${MAC_PREFIX}:${
    Array.from(b.slice(0, 3), (x) => x.toString(16).padStart(2, "0")).join(":")
  }`;
}

/** The modified EUI-64 interface identifier of a MAC (RFC 4291 appendix A). */
export function interfaceId(mac: string): bigint {
  const b = normalizeMac(mac).split(":").map((x) => parseInt(x, 16));
  const bytes = [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
  return bytes.reduce((n, x) => (n << 8n) | BigInt(x), 0n);
}

/** The SLAAC (EUI-64) address of `mac` in the /64 `prefix`. */
export function eui64(prefix: string, mac: string): string {
  const p = parsePrefix6(prefix);
  if (p.length !== 64) throw new TypeError(`SLAAC needs a /64, got ${prefix}`);
  return formatIpv6(p.network | interfaceId(mac));
}

/** The link-local (fe80::/64) EUI-64 address of `mac`. */
export function linkLocal(mac: string): string {
  return eui64("fe80::/64", mac);
}

/** The VXLAN multicast group of a VNI: `ff05::<vni in hex>` (site-local scope). */
export function multicastGroup(vni: number): string {
  checkVni(vni);
  return formatIpv6((0xff05n << 112n) | BigInt(vni));
}

/** Throws unless `vni` is a valid 24-bit VXLAN network identifier (1..16777215). */
export function checkVni(vni: number): void {
  if (!Number.isInteger(vni) || vni < 1 || vni > 0xffffff) {
    throw new RangeError(
      `VNI must be an integer from 1 to 16777215, got ${vni}`,
    );
  }
}

/** Parses dotted IPv4 into a 32-bit number. */
export function parseIpv4(addr: string): number {
  const parts = typeof addr === "string" ? addr.split(".") : [];
  if (
    parts.length !== 4 ||
    parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)
  ) {
    throw new TypeError(`Not an IPv4 address: ${JSON.stringify(addr)}`);
  }
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

/** A parsed IPv4 subnet. */
export interface Prefix4 {
  network: number;
  length: number;
}

/** Parses "a.b.c.d/len" (8..30); the address must be the network address. */
export function parsePrefix4(prefix: string): Prefix4 {
  const m = typeof prefix === "string"
    ? prefix.match(/^([\d.]+)\/(\d{1,2})$/)
    : null;
  if (!m) throw new TypeError(`Not an IPv4 subnet: ${JSON.stringify(prefix)}`);
  const length = Number(m[2]);
  if (length < 8 || length > 30) {
    throw new TypeError(`IPv4 subnet ${prefix} must be from /8 to /30`);
  }
  const network = parseIpv4(m[1]);
  const size = 2 ** (32 - length);
  if (network % size !== 0) {
    throw new TypeError(`IPv4 subnet ${prefix} has host bits set`);
  }
  return { network, length };
}

/**
 * The `index`th usable address of an IPv4 subnet for VMs: index 0 is the
 * network address + 2 (+1 is left for a gateway); the broadcast is never given.
 */
export function nthIpv4(subnet: string, index: number): string | null {
  const p = parsePrefix4(subnet);
  const size = 2 ** (32 - p.length);
  const n = 2 + index;
  if (!Number.isInteger(index) || index < 0 || n >= size - 1) return null;
  return formatIpv4(p.network + n);
}
