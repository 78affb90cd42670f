/**
 * What the host network driver (drivers/net/driver.ts) is asked to make
 * true on one host. The worker computes a {@linkcode HostNetState} from
 * etcd (the VMs this host runs, their NICs and networks) and calls
 * `NetDriver.sync(state)`; the driver converges bridges, VXLAN devices,
 * port devices, nftables rules and router advertisements to it, and
 * removes what is no longer wanted. Idempotent: syncing the same state
 * twice changes nothing (no rule is replaced, counters keep counting).
 *
 * @module
 */

/** A network as a host needs to know it. */
export interface NetworkSpec {
  /** The network id (`network/<id>` in etcd). */
  id: string;
  /** private: a VXLAN segment on a bridge ucloud makes; public: a host bridge. */
  kind: "private" | "public";
  /** The network's IPv6 /64, e.g. "fdc1:d00:0:5::/64". */
  prefix: string;
  /** Legacy IPv4 subnet (e.g. "192.0.2.0/24"), absent on IPv6-only networks. */
  ipv4?: string;
  /** private: the 24-bit VXLAN network identifier. */
  vni?: number;
  /** private: multicast (group) or unicast (head-end replication to peers). */
  mode?: "multicast" | "unicast";
  /** private, multicast: the IPv6 group, `ff05::<vni hex>`. */
  group?: string;
  /** public: the name of the existing host bridge the VM ports join. */
  bridge?: string;
  /** Send router advertisements for `prefix` on this host's bridge (radvd). */
  ra: boolean;
  /** Optional DHCP servers (dnsmasq) on this host's bridge. */
  dhcp: { v6: boolean; v4: boolean };
}

/** One VM NIC's host-side port. */
export interface PortSpec {
  /**
   * Host-side device name (max 15 characters). The driver creates it as a
   * persistent tap (qemu opens it by name) when it does not exist; an
   * existing device of that name (e.g. a veth of a namespace acting as a
   * VM in tests) is used as it is.
   */
  name: string;
  /**
   * The name an older release gave this port's tap (names.ts
   * `legacyTapName`): a tap still so named is renamed to `name`, so a
   * running VM keeps the tap its qemu holds.
   */
  formerName?: string;
  /** `NetworkSpec.id` of the network it joins. */
  network: string;
  /** The NIC's MAC: the only source MAC allowed from this port. */
  mac: string;
  /** The NIC's IPv6 address (EUI-64 of `mac` in the network's prefix). */
  ipv6: string;
  /** The NIC's IPv4 address on legacy networks. */
  ipv4?: string;
}

/** Everything the host should have; what is not here is removed. */
export interface HostNetState {
  networks: NetworkSpec[];
  ports: PortSpec[];
  /**
   * Unicast-mode networks: underlay IPv6 addresses of the other hosts that
   * have the network (network id → addresses), kept as all-zero FDB entries.
   */
  peers: Record<string, string[]>;
  /**
   * Ports to neither remove nor change (e.g. of VMs whose documents cannot
   * be read): each keeps its device, its rules and the bridge it is on.
   */
  keep?: string[];
}

/** The host's underlay: where VXLAN packets leave and arrive. */
export interface Underlay {
  /** Device name, e.g. "eth0". */
  device: string;
  /** This host's IPv6 address on it (the VXLAN source address). */
  address: string;
}

/** What `sync` changed (names of devices and chains), for logs and tests. */
export interface SyncReport {
  added: string[];
  removed: string[];
  /**
   * Port chains whose rules were replaced in place (the port spec changed),
   * and DHCP devices (`ucd...`) whose dnsmasq was restarted.
   */
  changed?: string[];
  /**
   * Ports left out, with their network and why; every other port is
   * synced as usual. A port left out keeps what it had (device, rules,
   * bridge), like a port in `keep`.
   */
  skipped?: Skipped[];
}

/** A port a sync left out (see {@linkcode SyncReport}). */
export interface Skipped {
  port: string;
  network: string;
  reason: string;
  /**
   * A command failed for it (a tap that did not come up, rules the kernel
   * refused): the next sync tries again. Absent: the port itself is bad
   * (its spec, or its public network's bridge is missing).
   */
  retry?: boolean;
}

/**
 * How the driver starts outside programs: `drivers/runner.ts`'s `run`, or
 * the same inside a named network namespace (`ip netns exec <ns> ...`).
 */
export type Exec = (
  cmd: string,
  args: string[],
  opts?: { signal?: AbortSignal; timeoutMs?: number; stdin?: string },
) => Promise<{ stdout: string; stderr: string }>;
