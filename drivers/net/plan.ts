/**
 * The pure first step of a host network sync (drivers/net/driver.ts):
 * checks a {@linkcode HostNetState} and resolves each port's network and
 * firewall rules, without I/O. One bad network or port never stops the
 * others: a network that cannot be made (a prefix that is not a /64, a
 * VNI another network has, no multicast group) and a port that cannot be
 * set up (a bad device name, a name two ports share or a bridge's, an
 * unknown network, a bad MAC, an address outside its network or one of
 * the service addresses, what the DHCP server would refuse) are left out
 * and returned in `skipped` with the reason. Only a state that cannot come
 * from etcd (one network id twice) throws.
 *
 * @example
 * ```ts
 * const { nets, ports, skipped } = planState(state, { vxlan: true });
 * ```
 *
 * @module
 */
import {
  canonicalPrefix6,
  inPrefix6,
  normalizeMac,
  parseIpv4,
  parsePrefix4,
  parsePrefix6,
} from "../../core/netaddr.ts";
import { dhcpServerOf } from "./dhcp_server.ts";
import {
  bridgeOf,
  checkDeviceName,
  isBridgeName,
  isDhcpDeviceName,
  isVxlanName,
  vxlanOf,
} from "./names.ts";
import { type PortRules, portRules } from "./nft.ts";
import type { HostNetState, NetworkSpec, PortSpec, Skipped } from "./types.ts";

/** The converged view of one wanted network. */
export interface NetPlan {
  net: NetworkSpec;
  bridge: string;
  vxlan?: string;
  /** MTU of the bridge, its VXLAN and its ports (set by the driver). */
  mtu: number;
}

/** A port that passed every check, with its network and rules. */
export interface PortPlan {
  port: PortSpec;
  net: NetPlan;
  rules: PortRules;
}

/** What {@linkcode planState} resolved. */
export interface StatePlan {
  /** Networks with at least one good port here, by id. */
  nets: Map<string, NetPlan>;
  /** Good ports by device name. */
  ports: Map<string, PortPlan>;
  /** Ports left out, with why (never retried before the state changes). */
  skipped: Skipped[];
}

/**
 * Checks `state` and resolves it. `vxlan`: private networks get a VXLAN
 * device (the host has an underlay).
 */
export function planState(
  state: HostNetState,
  opts: { vxlan: boolean },
): StatePlan {
  const nets = new Map<string, NetPlan>();
  const badNets = new Map<string, string>();
  const vnis = new Map<number, string>();
  for (const net of state.networks) {
    if (nets.has(net.id) || badNets.has(net.id)) {
      throw new TypeError(`Duplicate network ${net.id}`);
    }
    try {
      nets.set(net.id, planNet(net, vnis, opts.vxlan));
    } catch (err) {
      badNets.set(net.id, message(err));
    }
  }
  const skipped: Skipped[] = [];
  const skip = (port: PortSpec, reason: string) =>
    skipped.push({ port: String(port.name), network: port.network, reason });
  const ours = new Set(
    [...nets.values()].flatMap((p) => [p.bridge, p.vxlan ?? ""]),
  );
  const count = new Map<string, number>();
  for (const p of state.ports) count.set(p.name, (count.get(p.name) ?? 0) + 1);
  const ports = new Map<string, PortPlan>();
  /** MACs per network, to refuse a second port with one. */
  const macs = new Map<string, string>();
  for (const port of state.ports) {
    const bad = badNets.get(port.network);
    if (bad) {
      skip(port, bad);
      continue;
    }
    const net = nets.get(port.network);
    try {
      checkDeviceName(port.name);
      if (count.get(port.name)! > 1) {
        throw new TypeError(`Two ports are named ${port.name}`);
      }
      if (
        ours.has(port.name) || isBridgeName(port.name) ||
        isVxlanName(port.name) || isDhcpDeviceName(port.name)
      ) {
        throw new TypeError(
          `Port ${port.name} has the name of a bridge, VXLAN or DHCP device`,
        );
      }
      if (!net) {
        throw new TypeError(
          `Port ${port.name}: no network ${port.network} in the state`,
        );
      }
      const rules = checkPort(net, port);
      const key = `${net.net.id} ${normalizeMac(port.mac)}`;
      const other = macs.get(key);
      if (other) {
        throw new TypeError(
          `Port ${port.name}: port ${other} has MAC ${normalizeMac(port.mac)}`,
        );
      }
      macs.set(key, port.name);
      ports.set(port.name, { port, net, rules });
    } catch (err) {
      skip(port, message(err));
    }
  }
  // A network none of this host's good ports is on needs nothing here.
  const used = new Set([...ports.values()].map((p) => p.net.net.id));
  for (const id of nets.keys()) if (!used.has(id)) nets.delete(id);
  return { nets, ports, skipped };
}

function planNet(
  net: NetworkSpec,
  vnis: Map<number, string>,
  vxlan: boolean,
): NetPlan {
  const prefix = parsePrefix6(net.prefix);
  if (prefix.length !== 64) {
    throw new TypeError(`Network ${net.id}: prefix ${net.prefix} is not a /64`);
  }
  canonicalPrefix6(net.prefix);
  if (net.ipv4) parsePrefix4(net.ipv4);
  const plan: NetPlan = { net, bridge: bridgeOf(net), mtu: 1500 };
  if (net.kind === "private") {
    const other = vnis.get(net.vni!);
    if (other) {
      throw new TypeError(
        `Networks ${other} and ${net.id} have VNI ${net.vni}`,
      );
    }
    if ((net.mode ?? "multicast") === "multicast" && !net.group) {
      throw new TypeError(`Multicast network ${net.id} has no group`);
    }
    vnis.set(net.vni!, net.id);
    if (vxlan) plan.vxlan = vxlanOf(net);
  }
  return plan;
}

/**
 * The rules of a port, after the checks no command could make later: its
 * addresses lie in its network, and the DHCP server takes it.
 */
function checkPort(net: NetPlan, port: PortSpec): PortRules {
  const rules = portRules(net.net, port);
  if (!inPrefix6(port.ipv6, net.net.prefix)) {
    throw new TypeError(
      `Port ${port.name}: ${port.ipv6} is not in network ${net.net.id} (${net.net.prefix})`,
    );
  }
  if (port.ipv4 && net.net.ipv4) {
    const p = parsePrefix4(net.net.ipv4);
    const size = 2 ** (32 - p.length);
    const n = parseIpv4(port.ipv4);
    if (n < p.network || n >= p.network + size) {
      throw new TypeError(
        `Port ${port.name}: ${port.ipv4} is not in network ${net.net.id} (${net.net.ipv4})`,
      );
    }
  }
  dhcpServerOf(net.net, { bridge: net.bridge, mtu: 1500, ports: [port] });
  return rules;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
