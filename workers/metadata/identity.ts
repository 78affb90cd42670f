/**
 * Who is calling the metadata service: the port table of this host (the
 * ports of the last network sync, with their VM) and the listener a
 * request arrived on name the VM, from the connection's source address
 * only. The port firewall binds each source address to its tap (the
 * `ip6-spoof`/`ip4-spoof` rules) and the bridge lets metadata requests in
 * only from taps, so the address names the tap. Nothing the caller sends
 * (headers, paths) takes part.
 *
 * - On the link-local listener of a bridge (`fe80::a9fe:a9fe%<bridge>`),
 *   the caller is the port of that bridge whose link-local (EUI-64 of its
 *   MAC) or global IPv6 address is the source.
 * - On `fd00:ec2::254` the caller is the port with that global IPv6
 *   address; on `169.254.169.254` the one with that IPv4 address.
 * - No port, or more than one (an IPv4 address two legacy networks share):
 *   refused. The host itself has no port, so it is refused too.
 *
 * @example
 * ```ts
 * const table = new PortTable(ports);
 * table.identify({ kind: "ipv6" }, "fdc1:d00:0:5:c1:dff:fe00:11");
 * // { vm: "vm-1", port: {...}, nics: [...] }
 * ```
 */
import { linkLocal, parseIpv4, parseIpv6 } from "../../core/netaddr.ts";

/** One port of this host as the metadata service knows it. */
export interface MetadataPort {
  /** Host-side device (the VM's tap). */
  name: string;
  vm: string;
  /** The NIC's slot in the VM. */
  slot: number;
  network: string;
  /** The bridge the port is on. */
  bridge: string;
  mac: string;
  ipv6: string;
  /** The network's IPv6 /64. */
  prefix: string;
  ipv4?: string;
  /** The network's legacy IPv4 subnet, when it has one. */
  subnet?: string;
}

/** Which of the service's addresses a request arrived on. */
export type ListenerKind =
  | { kind: "link-local"; bridge: string }
  | { kind: "ipv6" }
  | { kind: "ipv4" };

/** A caller the table names: its VM, the port, and all its ports here. */
export interface Identified {
  vm: string;
  port: MetadataPort;
  /** Every port of the VM on this host, by slot. */
  nics: MetadataPort[];
}

/** Why a caller is refused. */
export interface Refused {
  refused: "unknown address" | "ambiguous address";
}

/** Lookup of callers by source address (see the module comment). */
export class PortTable {
  readonly #v6 = new Map<string, MetadataPort[]>();
  readonly #v4 = new Map<string, MetadataPort[]>();
  readonly #byVm = new Map<string, MetadataPort[]>();

  constructor(readonly ports: MetadataPort[]) {
    for (const p of ports) {
      add(this.#v6, key6(p.ipv6), p);
      add(this.#v6, key6(linkLocal(p.mac)), p);
      if (p.ipv4) add(this.#v4, key4(p.ipv4), p);
      add(this.#byVm, p.vm, p);
    }
    for (const list of this.#byVm.values()) {
      list.sort((a, b) => a.slot - b.slot);
    }
  }

  /** The VMs with a port here. */
  vms(): string[] {
    return [...this.#byVm.keys()];
  }

  /** The bridges with a port here. */
  bridges(): string[] {
    return [...new Set(this.ports.map((p) => p.bridge))].sort();
  }

  /** Names the caller at `remote` on `listener`, or why it is refused. */
  identify(listener: ListenerKind, remote: string): Identified | Refused {
    const found = this.#candidates(listener, remote);
    if (found.length === 0) return { refused: "unknown address" };
    if (found.length > 1) return { refused: "ambiguous address" };
    const port = found[0];
    return { vm: port.vm, port, nics: this.#byVm.get(port.vm)! };
  }

  #candidates(listener: ListenerKind, remote: string): MetadataPort[] {
    const addr = remote.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
    if (listener.kind === "ipv4") {
      const k = key4(addr);
      return k === null ? [] : this.#v4.get(k) ?? [];
    }
    const k = key6(addr);
    if (k === null) return [];
    const all = this.#v6.get(k) ?? [];
    if (listener.kind === "link-local") {
      return all.filter((p) => p.bridge === listener.bridge);
    }
    // The global listener: global addresses only (a link-local source
    // does not name the link it came from).
    return all.filter((p) => key6(p.ipv6) === k);
  }
}

function add(
  m: Map<string, MetadataPort[]>,
  k: string | null,
  p: MetadataPort,
) {
  if (k === null) return;
  const list = m.get(k) ?? [];
  if (!list.includes(p)) list.push(p);
  m.set(k, list);
}

function key6(addr: string): string | null {
  try {
    return parseIpv6(addr).toString(16);
  } catch {
    return null;
  }
}

function key4(addr: string): string | null {
  try {
    return String(parseIpv4(addr));
  } catch {
    return null;
  }
}
