/**
 * The wanted network state of a host, computed from documents (pure): its
 * VMs' ports, the networks of those ports and their unicast peers, in the
 * network driver's terms (drivers/net/types.ts).
 *
 * @example
 * ```ts
 * const want = wantedState("h1", vms, networks, members);
 * await driver.sync(want);
 * ```
 */
import type { Network, Vm } from "../core/schemas.ts";
import { legacyTapName, nicTapName } from "../drivers/net/mod.ts";
import type {
  HostNetState,
  NetworkSpec,
  PortSpec,
} from "../drivers/net/types.ts";

/** VM phases in which its process (and so its ports) may exist here. */
export const PORT_PHASES = new Set([
  "scheduled",
  "starting",
  "running",
  "stopping",
  "deleting",
]);
/** The driver's view of a network document. */
export function networkSpec(n: Network): NetworkSpec {
  return {
    id: n.id,
    kind: n.kind,
    prefix: n.prefix,
    ...(n.ipv4 ? { ipv4: n.ipv4 } : {}),
    ...(n.vni !== undefined ? { vni: n.vni } : {}),
    ...(n.mode ? { mode: n.mode } : {}),
    ...(n.group ? { group: n.group } : {}),
    ...(n.bridge ? { bridge: n.bridge } : {}),
    ra: n.ra,
    dhcp: n.dhcp,
  };
}

/**
 * The wanted state of `host` from the documents: a port for every NIC of
 * every VM whose process may run there, the networks of those ports, and
 * the unicast peers (other members' underlay addresses).
 */
export function wantedState(
  host: string,
  vms: Vm[],
  networks: Network[],
  members: { network: string; host: string; address?: string }[],
): HostNetState {
  const byId = new Map(networks.map((n) => [n.id, n]));
  const ports: PortSpec[] = [];
  const used = new Map<string, Network>();
  for (const vm of vms) {
    if (vm.status.host !== host || !PORT_PHASES.has(vm.status.phase)) continue;
    for (const nic of vm.nics) {
      const net = byId.get(nic.network);
      if (!net) continue;
      used.set(net.id, net);
      ports.push({
        name: nicTapName(vm.id, nic),
        formerName: legacyTapName(vm.id, nic.slot),
        network: net.id,
        mac: nic.mac,
        ipv6: nic.ipv6,
        ...(nic.ipv4 ? { ipv4: nic.ipv4 } : {}),
      });
    }
  }
  const peers: Record<string, string[]> = {};
  for (const net of used.values()) {
    if (net.kind !== "private" || net.mode !== "unicast") continue;
    peers[net.id] = members
      .filter((m) => m.network === net.id && m.host !== host && m.address)
      .map((m) => m.address!)
      .sort();
  }
  return {
    networks: [...used.values()].map(networkSpec),
    ports: ports.sort((a, b) => a.name.localeCompare(b.name)),
    peers,
  };
}
