/**
 * Network and port specs the network tests hand to the driver: a private
 * network (multicast VXLAN, RA on, no DHCP unless asked) and a VM's port on
 * it with its EUI-64 address.
 */
import { eui64, multicastGroup } from "../../core/netaddr.ts";
import type { NetworkSpec, PortSpec } from "../../drivers/net/types.ts";
import type { VmNs } from "./vmns.ts";

/** A private network spec (multicast VXLAN, RA on, no DHCP) with `opts` over it. */
export function privateNet(
  id: string,
  vni: number,
  prefix: string,
  opts: Partial<NetworkSpec> = {},
): NetworkSpec {
  return {
    id,
    kind: "private",
    prefix,
    vni,
    mode: "multicast",
    group: multicastGroup(vni),
    ra: true,
    dhcp: { v6: false, v4: false },
    ...opts,
  };
}

/** The port of `vm` on `net` (EUI-64 address). */
export function portOf(vm: VmNs, net: NetworkSpec, ipv4?: string): PortSpec {
  return {
    name: vm.port,
    network: net.id,
    mac: vm.mac,
    ipv6: eui64(net.prefix, vm.mac),
    ...(ipv4 ? { ipv4 } : {}),
  };
}
