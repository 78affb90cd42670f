/**
 * The metadata service of a host, run by the worker (host namespace).
 * After each successful network sync, `HostNet` hands it the wanted state
 * (workers/net.ts) with the VM of each port; the service then
 * - rebuilds its port table (identity.ts): which source address is which
 *   VM's port, on which bridge;
 * - watches the metadata of exactly those VMs (cache.ts);
 * - listens on `fe80::a9fe:a9fe%<bridge>` for each bridge of the state,
 *   on `fd00:ec2::254` once, and on `169.254.169.254` once when a network
 *   has legacy IPv4 (listeners.ts; the network driver puts the addresses
 *   on the bridges, drivers/net/host_input.ts `METADATA`).
 *
 * @example
 * ```ts
 * const svc = await MetadataService.start({ store, log });
 * await svc.update(state, vmOfPort);
 * await svc.close();
 * ```
 */
import type { Logger } from "../../core/log.ts";
import type { Store } from "../../core/store.ts";
import { METADATA } from "../../drivers/net/host_input.ts";
import { bridgeOf } from "../../drivers/net/names.ts";
import type { HostNetState } from "../../drivers/net/types.ts";
import { createMetadataApp } from "./app.ts";
import { MetadataCache } from "./cache.ts";
import { type ListenerKind, type MetadataPort, PortTable } from "./identity.ts";
import { Listeners, type ListenSpec } from "./listeners.ts";
import { Tokens } from "./token.ts";

/** Options of {@linkcode MetadataService.start}. */
export interface MetadataServiceOptions {
  store: Store;
  log: Logger;
  /** Config `metadata.requireToken`. */
  requireToken?: boolean;
  /** TCP port; default `METADATA.port` (80); 0: any free port (tests). */
  port?: number;
  /**
   * The addresses to listen on; default `METADATA` (tests listen on
   * loopback addresses instead).
   */
  addresses?: Addresses;
}

/** Where the service listens (see {@linkcode MetadataServiceOptions}). */
export interface Addresses {
  linkLocal: string;
  ipv6: string;
  ipv4: string;
}

const DEFAULT_ADDRESSES: Addresses = {
  linkLocal: METADATA.ipv6[0],
  ipv6: METADATA.ipv6[1],
  ipv4: METADATA.ipv4,
};

/** The VM and NIC slot of each port, by port name. */
export type PortOwners = Map<string, { vm: string; slot: number }>;

/** See the module comment. */
export class MetadataService {
  #table = new PortTable([]);
  readonly #cache: MetadataCache;
  readonly #listeners: Listeners;
  readonly #port: number;
  readonly #addresses: Addresses;
  readonly #log: Logger;
  readonly #app: ReturnType<typeof createMetadataApp>;

  private constructor(o: MetadataServiceOptions, tokens: Tokens) {
    this.#log = o.log.child({ component: "metadata" });
    this.#port = o.port ?? METADATA.port;
    this.#addresses = o.addresses ?? DEFAULT_ADDRESSES;
    this.#cache = new MetadataCache({ store: o.store, log: this.#log });
    this.#app = createMetadataApp({
      identify: (l, r) => this.#table.identify(l, r),
      data: (vm) => this.#cache.get(vm),
      tokens,
      requireToken: o.requireToken,
      log: this.#log,
    });
    this.#listeners = new Listeners({
      handler: (req, listener, remote) => this.handle(req, listener, remote),
      log: this.#log,
    });
  }

  /** A service with no ports yet (nothing listens until `update`). */
  static async start(o: MetadataServiceOptions): Promise<MetadataService> {
    return new MetadataService(o, await Tokens.create());
  }

  /**
   * Answers `req` as if it arrived on `listener` from `remote`: what each
   * listener does with a request.
   */
  handle(
    req: Request,
    listener: ListenerKind,
    remote: string,
  ): Response | Promise<Response> {
    return this.#app.fetch(req, { listener, remote });
  }

  /** The open listeners and their ports (for tests and logs). */
  addresses(): ReturnType<Listeners["addresses"]> {
    return this.#listeners.addresses();
  }

  /**
   * Serves the VMs of `state`'s ports (each port's VM from `owners`; a
   * port without one is left out) from now on.
   */
  async update(state: HostNetState, owners: PortOwners): Promise<void> {
    const nets = new Map(state.networks.map((n) => [n.id, n]));
    const ports: MetadataPort[] = [];
    for (const p of state.ports) {
      const net = nets.get(p.network), owner = owners.get(p.name);
      if (!net || !owner) continue;
      ports.push({
        name: p.name,
        vm: owner.vm,
        slot: owner.slot,
        network: net.id,
        bridge: bridgeOf(net),
        mac: p.mac,
        ipv6: p.ipv6,
        prefix: net.prefix,
        ...(p.ipv4 && net.ipv4 ? { ipv4: p.ipv4, subnet: net.ipv4 } : {}),
      });
    }
    this.#table = new PortTable(ports);
    this.#cache.track(this.#table.vms());
    const bridges = [...new Set(state.networks.map(bridgeOf))].sort();
    await this.#listeners.want(
      await listenSpecs(
        bridges,
        state.networks.some((n) => n.ipv4),
        this.#port,
        this.#addresses,
      ),
    );
  }

  /** Closes every listener and watch. */
  async close(): Promise<void> {
    await this.#listeners.close();
    await this.#cache.close();
  }
}

/** The listeners for these bridges (those that exist here). */
async function listenSpecs(
  bridges: string[],
  ipv4: boolean,
  port: number,
  addrs: Addresses,
): Promise<ListenSpec[]> {
  const out: ListenSpec[] = [];
  const { linkLocal: ll, ipv6: ec2 } = addrs;
  for (const b of bridges) {
    const index = await Deno.readTextFile(`/sys/class/net/${b}/ifindex`)
      .then((s) => s.trim(), () => null);
    if (index === null) continue;
    out.push({
      id: `link-local ${b} ${index}`,
      hostname: `${ll}%${b}`,
      port,
      listener: { kind: "link-local", bridge: b },
    });
  }
  if (bridges.length) {
    out.push({ id: "ipv6", hostname: ec2, port, listener: { kind: "ipv6" } });
  }
  if (ipv4) {
    out.push({
      id: "ipv4",
      hostname: addrs.ipv4,
      port,
      listener: { kind: "ipv4" },
    });
  }
  return out;
}
