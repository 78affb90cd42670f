/**
 * The fixture of the tenant isolation attack tests: one host namespace
 * (no underlay) with the network driver, VM namespaces on its ports, and
 * reads of what an attack could have changed (the bridge's FDB, a VM's
 * neighbour cache, rule counters of both nft tables).
 *
 * @example
 * ```ts
 * await withAttackHost("ucatk", async (env) => {
 *   const x = await env.vm("x", 0x11);
 *   await env.sync([env.portOf(x, net)], [net]);
 * });
 * ```
 */
import { NFT_TABLE, tapName } from "../../drivers/net/names.ts";
import type { NetDriver } from "../../drivers/net/driver.ts";
import { type NftTable, parseTable } from "../../drivers/net/nft.ts";
import type {
  HostNetState,
  NetworkSpec,
  PortSpec,
} from "../../drivers/net/types.ts";
import { run } from "../../drivers/runner.ts";
import { type NetEnv, nftTable, withNetHosts } from "./net_hosts.ts";
import { capture, sendFrames } from "./vm_wire.ts";
import { nsRun, type VmNs } from "./vmns.ts";

/** What an attack test works with. */
export interface AttackEnv extends NetEnv {
  /** The host namespace. */
  ns: string;
  /** The /64 number `n` of this run: `fdc1:d00:<run id>:<n>::/64`. */
  prefix(n: number): string;
  /** A VM namespace on port `tapName(name, 0)` with MAC `mac(n)`. */
  vm(name: string, n: number, opts?: { ipv4?: string; up?: boolean }): Promise<
    VmNs
  >;
  /** The driver of the host (no underlay), made on first use. */
  driver(): NetDriver;
  /** Syncs the host to these networks and ports. */
  sync(networks: NetworkSpec[], ports: PortSpec[]): Promise<void>;
  /**
   * Packets counted so far by every rule named `comment` for `port` (NaN
   * when there is no such rule: a check of a rise then fails).
   */
  counted(port: string, comment: string): Promise<number>;
  /**
   * Sends `frames` from `from` (`repeat` times) while capturing at each
   * VM of `at`; the markers each received.
   */
  exchange(
    from: VmNs,
    frames: Uint8Array[],
    at: VmNs[],
    repeat?: number,
  ): Promise<Map<string, number>[]>;
}

/** A MAC of the tests: `02:c1:0d:00:<n>`. */
export function mac(n: number): string {
  return `02:c1:0d:00:${(n >> 8).toString(16).padStart(2, "0")}:${
    (n & 0xff).toString(16).padStart(2, "0")
  }`;
}

export { portOf, privateNet } from "./net_specs.ts";

/** The table `netdev ucloud` in `ns`; null when there is none. */
export async function ingressTable(ns: string): Promise<NftTable | null> {
  try {
    const { stdout } = await nsRun(ns, "nft", [
      "-j",
      "list",
      "table",
      "netdev",
      NFT_TABLE,
    ]);
    return parseTable(stdout);
  } catch (err) {
    if (/No such file/.test(String(err))) return null;
    throw err;
  }
}

/** FDB entries of `bridge` as `mac -> port` (entries of the bridge itself left out). */
export async function fdb(ns: string, bridge: string) {
  const { stdout } = await run("bridge", [
    "-n",
    ns,
    "-j",
    "fdb",
    "show",
    "br",
    bridge,
  ]);
  const out = new Map<string, string>();
  for (
    const e of JSON.parse(stdout) as {
      mac: string;
      ifname: string;
      flags?: string[];
      state?: string;
    }[]
  ) {
    if (e.ifname !== bridge && !e.mac.startsWith("33:33:")) {
      out.set(e.mac, e.ifname);
    }
  }
  return out;
}

/** The link-layer address `vm`'s neighbour cache holds for `addr`, or "". */
export async function neighbour(vm: VmNs, addr: string): Promise<string> {
  const { stdout } = await run("ip", [
    "-n",
    vm.ns,
    "-j",
    "-6",
    "neigh",
    "show",
    "dev",
    "eth0",
  ]);
  const e = (JSON.parse(stdout || "[]") as { dst: string; lladdr?: string }[])
    .find((n) => n.dst === addr);
  return e?.lladdr ?? "";
}

function tally(markers: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of markers) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

/** Runs `f` on one host namespace; everything is checked gone afterwards. */
export function withAttackHost(
  prefix: string,
  f: (env: AttackEnv) => Promise<void>,
): Promise<void> {
  return withNetHosts(["h1"], async (env) => {
    const ns = env.net.host("h1").ns;
    let d: NetDriver | undefined;
    const a: AttackEnv = {
      ...env,
      ns,
      prefix: (n) => `fdc1:d00:${env.net.id}:${n}::/64`,
      vm: (name, n, opts = {}) =>
        env.vms.create({
          name,
          hostNs: ns,
          port: tapName(mac(n)),
          mac: mac(n),
          ...opts,
        }),
      driver: () => d ??= env.driver("h1", false),
      async sync(networks, ports) {
        const state: HostNetState = { networks, ports, peers: {} };
        await a.driver().sync(state);
      },
      async counted(port, comment) {
        let n = 0, found = false;
        for (const t of [await nftTable(ns), await ingressTable(ns)]) {
          for (const c of t?.chains.values() ?? []) {
            if (!c.name.endsWith(port)) continue;
            for (const r of c.rules) {
              if (r.comment !== comment) continue;
              found = true;
              n += r.packets;
            }
          }
        }
        return found ? n : NaN;
      },
      async exchange(from, frames, at, repeat = 3) {
        const caps = [];
        for (const vm of at) caps.push(await capture(env.vms, vm));
        await sendFrames(from, frames, { repeat });
        // Frames on veths and bridges arrive within microseconds; the
        // pause only lets the capture processes print what they read.
        await new Promise((r) => setTimeout(r, 300));
        const out = [];
        for (const c of caps) out.push(tally(await c.stop()));
        return out;
      },
    };
    await f(a);
  }, { prefix });
}
