/**
 * Ethernet frame and IP packet builders for network driver tests
 * (`frame.*`, checksums filled in) and the byte helpers they are made of.
 */
import { parseIpv4, parseIpv6 } from "../../core/netaddr.ts";

/** The parts one after the other. */
export function cat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `n` as 2 bytes, big-endian. */
export function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function u32(n: number): number[] {
  return [...u16(Math.floor(n / 65536)), ...u16(n % 65536)];
}

/** The 6 bytes of `mac`. */
export function macBytes(mac: string): number[] {
  return mac.split(":").map((x) => parseInt(x, 16));
}

/** The 16 bytes of IPv6 address `addr`. */
export function ip6Bytes(addr: string): Uint8Array {
  const n = parseIpv6(addr);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    out[i] = Number((n >> BigInt(8 * (15 - i))) & 0xffn);
  }
  return out;
}

/** The 4 bytes of IPv4 address `addr`. */
export function ip4Bytes(addr: string): number[] {
  return u32(parseIpv4(addr));
}

function checksum(data: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < data.length; i += 2) {
    sum += (data[i] << 8) + (i + 1 < data.length ? data[i + 1] : 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function l4over6(
  src: string,
  dst: string,
  nh: number,
  l4: Uint8Array,
  csumAt: number,
): Uint8Array {
  const pseudo = cat(ip6Bytes(src), ip6Bytes(dst), u32(l4.length), [
    0,
    0,
    0,
    nh,
  ], l4);
  const c = checksum(pseudo);
  l4[csumAt] = c >> 8;
  l4[csumAt + 1] = c & 0xff;
  return l4;
}

/** Ethernet frame and IP packet builders (checksums filled in). */
export const frame = {
  ether(dst: string, src: string, type: number, payload: Uint8Array) {
    return cat(macBytes(dst), macBytes(src), u16(type), payload);
  },
  /** An 802.1Q tagged frame. */
  vlan(
    dst: string,
    src: string,
    vid: number,
    type: number,
    payload: Uint8Array,
  ) {
    return cat(
      macBytes(dst),
      macBytes(src),
      u16(0x8100),
      u16(vid),
      u16(type),
      payload,
    );
  },
  ipv6(src: string, dst: string, nh: number, payload: Uint8Array, hlim = 64) {
    return cat(
      [0x60, 0, 0, 0],
      u16(payload.length),
      [nh, hlim],
      ip6Bytes(src),
      ip6Bytes(dst),
      payload,
    );
  },
  udp6(
    src: string,
    dst: string,
    sport: number,
    dport: number,
    data: Uint8Array,
  ) {
    const l4 = cat(u16(sport), u16(dport), u16(8 + data.length), [0, 0], data);
    return frame.ipv6(src, dst, 17, l4over6(src, dst, 17, l4, 6));
  },
  icmp6(
    src: string,
    dst: string,
    type: number,
    code: number,
    body: Uint8Array,
    hlim = 255,
  ) {
    const l4 = cat([type, code, 0, 0], body);
    return frame.ipv6(src, dst, 58, l4over6(src, dst, 58, l4, 2), hlim);
  },
  /** A router advertisement (router lifetime 1800) with one SLAAC prefix. */
  ra(src: string, mac: string, prefix: string, extra: Uint8Array) {
    const [addr, len] = prefix.split("/");
    const body = cat(
      [64, 0],
      u16(1800),
      u32(0),
      u32(0),
      [3, 4, Number(len), 0xc0],
      u32(86400),
      u32(14400),
      u32(0),
      ip6Bytes(addr),
      [1, 1],
      macBytes(mac),
      extra,
    );
    return frame.icmp6(src, "ff02::1", 134, 0, body);
  },
  /** An unsolicited neighbour advertisement (override) for `target`. */
  na(src: string, mac: string, target: string, extra: Uint8Array) {
    const body = cat(
      [0x20, 0, 0, 0],
      ip6Bytes(target),
      [2, 1],
      macBytes(mac),
      extra,
    );
    return frame.icmp6(src, "ff02::1", 136, 0, body);
  },
  udp4(
    src: string,
    dst: string,
    sport: number,
    dport: number,
    data: Uint8Array,
  ) {
    const udp = cat(u16(sport), u16(dport), u16(8 + data.length), [0, 0], data);
    const hdr = new Uint8Array(
      cat(
        [0x45, 0],
        u16(20 + udp.length),
        [0, 0, 0x40, 0, 64, 17, 0, 0],
        ip4Bytes(src),
        ip4Bytes(dst),
      ),
    );
    const c = checksum(hdr);
    hdr[10] = c >> 8;
    hdr[11] = c & 0xff;
    return cat(hdr, udp);
  },
  /** An ARP packet (1 request, 2 reply) followed by `trailer`. */
  arp(
    op: number,
    senderMac: string,
    senderIp: string,
    targetMac: string,
    targetIp: string,
    trailer: Uint8Array,
  ) {
    return cat(
      [0, 1, 8, 0, 6, 4],
      u16(op),
      macBytes(senderMac),
      ip4Bytes(senderIp),
      macBytes(targetMac),
      ip4Bytes(targetIp),
      trailer,
    );
  },
};

/** EtherTypes used by the tests. */
export const ETH = { ip4: 0x0800, arp: 0x0806, ip6: 0x86dd } as const;
