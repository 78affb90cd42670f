/**
 * Names of what the host network driver makes: bridges and VXLAN devices
 * of private networks, VM taps and the nftables chain of each port. Pure:
 * the same input always gives the same name, so a restarted worker finds
 * what the previous one made.
 *
 * @example
 * ```ts
 * bridgeOf({ kind: "private", vni: 0x5a, ... }); // "ucb5a"
 * tapName("02:c1:0d:12:34:56"); // "uct02c10d123456"
 * nicChain("uct02c10d123456"); // "nic-uct02c10d123456"
 * dhcpDeviceOf({ kind: "private", vni: 0x5a, ... }); // "ucd5a"
 * ```
 *
 * @module
 */
import { checkVni, normalizeMac } from "../../core/netaddr.ts";
import type { NetworkSpec } from "./types.ts";

/** The nftables table (family bridge) holding every port rule. */
export const NFT_TABLE = "ucloud";

/** Prefix of ucloud's private-network bridges (`ucb<vni hex>`). */
export const BRIDGE_PREFIX = "ucb";
/** Prefix of ucloud's VXLAN devices (`ucv<vni hex>`). */
export const VXLAN_PREFIX = "ucv";
/** Prefix of ucloud's VM taps; the firewall drops unknown ports named so. */
export const TAP_PREFIX = "uct";
/**
 * Prefix of the host end of a DHCP namespace's veth (`ucd<tag>`); the
 * namespace itself has the same name (see {@linkcode dhcpNetnsOf}).
 */
export const DHCP_PREFIX = "ucd";
/**
 * Alias (`ip link set ... alias`) of every device the driver creates: a
 * device is removed only when its name pattern AND this alias match.
 */
export const DEVICE_ALIAS = "ucloud-net";

const PORT_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/**
 * The bridge of a network on this host: `ucb<vni hex>` for a private
 * network, the admin's `net.bridge` for a public one.
 */
export function bridgeOf(net: NetworkSpec): string {
  if (net.kind === "public") {
    if (!net.bridge) {
      throw new TypeError(`Public network ${net.id} has no bridge`);
    }
    checkDeviceName(net.bridge);
    return net.bridge;
  }
  return BRIDGE_PREFIX + privateVni(net).toString(16);
}

/** The VXLAN device of a private network: `ucv<vni hex>`. */
export function vxlanOf(net: NetworkSpec): string {
  if (net.kind !== "private") {
    throw new TypeError(`Network ${net.id} is public: it has no VXLAN`);
  }
  return VXLAN_PREFIX + privateVni(net).toString(16);
}

function privateVni(net: NetworkSpec): number {
  if (net.vni === undefined) {
    throw new TypeError(`Private network ${net.id} has no VNI`);
  }
  checkVni(net.vni);
  return net.vni;
}

/**
 * The host end of the veth to a network's DHCP namespace: `ucd` + the VNI
 * in hex (private, 1 to 6 digits) or + the 32-bit FNV-1a hash of the
 * network id in 8 hex digits (public), so the two never collide.
 */
export function dhcpDeviceOf(net: NetworkSpec): string {
  const tag = net.kind === "public"
    ? fnv1a32(net.id).toString(16).padStart(8, "0")
    : privateVni(net).toString(16);
  return DHCP_PREFIX + tag;
}

/**
 * The network namespace of a network's DHCP server: named like its device
 * ({@linkcode dhcpDeviceOf}), prefixed with `<hostNetns>-` when the driver
 * runs in a named namespace (tests acting as several hosts share
 * `/run/netns`).
 */
export function dhcpNetnsOf(net: NetworkSpec, hostNetns?: string): string {
  return (hostNetns ? `${hostNetns}-` : "") + dhcpDeviceOf(net);
}

/** Whether `name` is shaped like a namespace from {@linkcode dhcpNetnsOf}. */
export function isDhcpNetnsName(name: string, hostNetns?: string): boolean {
  const prefix = hostNetns ? `${hostNetns}-` : "";
  return name.startsWith(prefix) && isDhcpDeviceName(name.slice(prefix.length));
}

/**
 * The tap of the VM NIC with `mac`: `uct` + the MAC's 12 hex digits (15
 * characters, the most a device name has). MACs are unique in the cluster
 * (`ipam/mac/<mac>`), so two NICs never get one tap. Throws a TypeError
 * for a string that is not a MAC.
 */
export function tapName(mac: string): string {
  return TAP_PREFIX + normalizeMac(mac).replaceAll(":", "");
}

/**
 * The tap name of releases before {@linkcode tapName}: `uct` + the 32-bit
 * FNV-1a hash of the VM id in 8 hex digits + the slot digit (12
 * characters). Two VMs could get the same one; a sync renames a running
 * VM's tap from this name to its new one (drivers/net/ports.ts).
 */
export function legacyTapName(vmId: string, slot: number): string {
  if (!Number.isInteger(slot) || slot < 0 || slot > 9) {
    throw new RangeError(`NIC slot must be 0 to 9, got ${slot}`);
  }
  return `${TAP_PREFIX}${fnv1a32(vmId).toString(16).padStart(8, "0")}${slot}`;
}

/**
 * The tap of NIC `nic` of VM `vmId`: {@linkcode tapName} of its MAC; a
 * NIC whose MAC is bad gets its {@linkcode legacyTapName}, so that the
 * sync leaves out that one port (drivers/net/plan.ts refuses its MAC)
 * instead of failing for the whole host.
 */
export function nicTapName(
  vmId: string,
  nic: { slot: number; mac: string },
): string {
  try {
    return tapName(nic.mac);
  } catch {
    return legacyTapName(vmId, nic.slot);
  }
}

/** The nftables chain holding the rules of `port`: `nic-<port>`. */
export function nicChain(port: string): string {
  checkDeviceName(port);
  return `nic-${port}`;
}

/**
 * Throws a TypeError unless `name` is a device name the driver accepts:
 * 1 to 15 characters of `[A-Za-z0-9_.-]`, starting with a letter or digit
 * (safe in `ip` arguments and in nftables strings and chain names).
 */
export function checkDeviceName(name: string): void {
  if (typeof name !== "string" || !PORT_RE.test(name)) {
    throw new TypeError(
      `Bad device name ${
        JSON.stringify(name)
      }: 1-15 characters of [A-Za-z0-9_.-]`,
    );
  }
}

/** Whether `name` is one of the private bridges the driver names. */
export function isBridgeName(name: string): boolean {
  return new RegExp(`^${BRIDGE_PREFIX}[0-9a-f]{1,6}$`).test(name);
}

/** Whether `name` is one of the VXLAN devices the driver names. */
export function isVxlanName(name: string): boolean {
  return new RegExp(`^${VXLAN_PREFIX}[0-9a-f]{1,6}$`).test(name);
}

/** Whether `name` is shaped like a device from {@linkcode dhcpDeviceOf}. */
export function isDhcpDeviceName(name: string): boolean {
  return new RegExp(`^${DHCP_PREFIX}([0-9a-f]{1,6}|[0-9a-f]{8})$`).test(name);
}

/**
 * Whether `name` is shaped like a tap from {@linkcode tapName} or
 * {@linkcode legacyTapName}.
 */
export function isTapName(name: string): boolean {
  return new RegExp(`^${TAP_PREFIX}([0-9a-f]{12}|[0-9a-f]{8}[0-9])$`).test(
    name,
  );
}

/** The 32-bit FNV-1a hash of the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
