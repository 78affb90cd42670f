/**
 * The sysctls the network driver sets on its devices, in the form
 * `sysctl -w` takes: IPv6 off on taps and VXLANs, no RAs, autoconf or DAD
 * and forwarding on for the bridges of private networks.
 *
 * @example
 * ```ts
 * ipv6Sysctl("uct1a2b", "disable_ipv6", 1); // "net/ipv6/conf/uct1a2b/disable_ipv6=1"
 * ```
 *
 * @module
 */

/**
 * `net/ipv6/conf/<dev>/<key>=<value>` for `sysctl -w`: with slashes, a dot
 * in a device name (e.g. `eth0.5`) stays part of the name.
 */
export function ipv6Sysctl(dev: string, key: string, value: number): string {
  return `net/ipv6/conf/${dev}/${key}=${value}`;
}
