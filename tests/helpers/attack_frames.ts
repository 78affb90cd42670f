/**
 * Frames of the tenant isolation attack tests (tests/net_attack_test.ts),
 * built on the helpers of tests/helpers/vmns.ts: neighbour solicitations
 * (also DAD, from `::`), MLDv2 reports, reserved link-local multicast
 * frames (LLDP), DHCPv4 messages with any client hardware address and
 * ports. Every builder carries a marker (`marker(id)`) so a capture can
 * tell which frames arrived.
 *
 * @example
 * ```ts
 * await sendFrames(x, [attack.lldp(x.mac, y.mac, marker("lldp"))]);
 * ```
 */
import {
  cat,
  ETH,
  frame,
  ip4Bytes,
  ip6Bytes,
  macBytes,
  u16,
} from "./frames.ts";

/** The LLDP destination (nearest bridge), one of 01:80:c2:00:00:0x. */
export const LLDP_MAC = "01:80:c2:00:00:0e";

/** An ND option of an unknown type (ignored by receivers) holding `data`. */
function markerOption(data: Uint8Array): Uint8Array {
  const len = Math.ceil((data.length + 2) / 8);
  const out = new Uint8Array(len * 8);
  out.set([253, len], 0);
  out.set(data, 2);
  return out;
}

/** The solicited-node multicast address of `addr` and its MAC. */
export function solicitedNode(addr: string): { ip: string; mac: string } {
  const b = ip6Bytes(addr).slice(13);
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0"));
  return {
    ip: `ff02::1:ff${h[0]}:${h[1]}${h[2]}`,
    mac: `33:33:ff:${h.join(":")}`,
  };
}

/** A DHCPv4 message: BOOTP header and the options (53 = `type`). */
function bootp(
  op: 1 | 2,
  chaddr: string,
  type: number,
  options: number[],
  extra: Uint8Array,
  yiaddr = "0.0.0.0",
): Uint8Array {
  const head = cat(
    [op, 1, 6, 0],
    [0x5a, 0x11, 0x0c, 0x01], // xid
    u16(0),
    u16(0x8000),
    [0, 0, 0, 0],
    ip4Bytes(yiaddr),
    [0, 0, 0, 0, 0, 0, 0, 0],
    macBytes(chaddr),
    new Uint8Array(10 + 64 + 128),
  );
  return cat(head, [99, 130, 83, 99, 53, 1, type], options, [255], extra);
}

/** Ethernet frames of the attack tests. */
export const attack = {
  /** A frame to a reserved link-local group MAC (LLDP's by default). */
  linkLocal(src: string, extra: Uint8Array, dst = LLDP_MAC) {
    // LLDP: chassis id (MAC), port id, TTL, end; the marker after the end.
    const tlv = cat(
      [0x02, 0x07, 0x04],
      macBytes(src),
      [0x04, 0x02, 0x07, 0x31],
      [0x06, 0x02, 0x00, 0x78],
      [0x00, 0x00],
      extra,
    );
    return frame.ether(dst, src, 0x88cc, tlv);
  },
  /**
   * A neighbour solicitation for `target` from `src` (`::`: duplicate
   * address detection, to the target's solicited-node group).
   */
  ns(mac: string, src: string, target: string, extra: Uint8Array) {
    const group = solicitedNode(target);
    const body = cat(
      [0, 0, 0, 0],
      ip6Bytes(target),
      src === "::" ? [] : [1, 1, ...macBytes(mac)],
      markerOption(extra),
    );
    return frame.ether(
      group.mac,
      mac,
      ETH.ip6,
      frame.icmp6(src, group.ip, 135, 0, body),
    );
  },
  /**
   * An MLDv2 report (to ff02::16, hop-by-hop router alert) joining the
   * solicited-node group of `target`, as a host sends before DAD.
   */
  mldReport(mac: string, src: string, target: string, extra: Uint8Array) {
    const group = solicitedNode(target).ip;
    const icmp = cat(
      [143, 0, 0, 0, 0, 0],
      u16(1),
      [4, 0],
      u16(0),
      ip6Bytes(group),
      extra,
    );
    const pseudo = cat(
      ip6Bytes(src),
      ip6Bytes("ff02::16"),
      [0, 0, ...u16(icmp.length)],
      [0, 0, 0, 58],
      icmp,
    );
    let sum = 0;
    for (let i = 0; i < pseudo.length; i += 2) {
      sum += (pseudo[i] << 8) + (i + 1 < pseudo.length ? pseudo[i + 1] : 0);
    }
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    icmp.set(u16(~sum & 0xffff), 2);
    const hbh = [58, 0, 5, 2, 0, 0, 1, 0];
    const payload = cat(hbh, icmp);
    const ip6 = cat(
      [0x60, 0, 0, 0],
      u16(payload.length),
      [0, 1],
      ip6Bytes(src),
      ip6Bytes("ff02::16"),
      payload,
    );
    return frame.ether("33:33:00:00:00:16", mac, ETH.ip6, ip6);
  },
  /** A DHCPOFFER of `yiaddr` to `chaddr`, broadcast from `sport`. */
  dhcp4Offer(
    mac: string,
    src: string,
    sport: number,
    chaddr: string,
    yiaddr: string,
    extra: Uint8Array,
  ) {
    const msg = bootp(2, chaddr, 2, [54, 4, ...ip4Bytes(src)], extra, yiaddr);
    return frame.ether(
      "ff:ff:ff:ff:ff:ff",
      mac,
      ETH.ip4,
      frame.udp4(src, "255.255.255.255", sport, 68, msg),
    );
  },
  /** A DHCPv4 client message (`type`: 1 discover, 4 decline, ...). */
  dhcp4Client(
    mac: string,
    chaddr: string,
    type: number,
    options: number[],
    extra: Uint8Array,
  ) {
    return frame.ether(
      "ff:ff:ff:ff:ff:ff",
      mac,
      ETH.ip4,
      frame.udp4(
        "0.0.0.0",
        "255.255.255.255",
        68,
        67,
        bootp(1, chaddr, type, options, extra),
      ),
    );
  },
  /**
   * A DHCPDECLINE of `ip` (option 50) to server `server` (option 54) in
   * the name of `chaddr`.
   */
  dhcp4Decline(
    mac: string,
    chaddr: string,
    ip: string,
    server: string,
    extra: Uint8Array,
  ) {
    return attack.dhcp4Client(mac, chaddr, 4, [
      50,
      4,
      ...ip4Bytes(ip),
      54,
      4,
      ...ip4Bytes(server),
    ], extra);
  },
  /**
   * The IPv4 packet of an Ethernet frame `f` in two fragments, the first
   * carrying `first` bytes of its payload (a multiple of 8).
   */
  fragment4(f: Uint8Array, first: number): Uint8Array[] {
    const head = f.slice(0, 14), ip = f.slice(14, 34), data = f.slice(34);
    const part = (
      offset: number,
      body: Uint8Array,
      more: boolean,
    ): Uint8Array => {
      const h = new Uint8Array(ip);
      h.set(u16(20 + body.length), 2);
      h.set([0x1c, 0x11], 4); // identification
      h.set(u16((more ? 0x2000 : 0) | (offset / 8)), 6);
      h.set([0, 0], 10);
      let sum = 0;
      for (let i = 0; i < 20; i += 2) sum += (h[i] << 8) + h[i + 1];
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      h.set(u16(~sum & 0xffff), 10);
      return cat(head, h, body);
    };
    return [
      part(0, data.slice(0, first), true),
      part(first, data.slice(first), false),
    ];
  },
};
