/**
 * The counters of this host's network, read for the worker's `/metrics`
 * (workers/metrics_net.ts): every link's packet and byte counters (one `ip
 * -s -j link show`, so taps, bridges and VXLAN devices cost one command
 * per scrape), and the packets each port's firewall rules dropped, by
 * port and rule comment (the two nft tables, drivers/net/nft.ts and
 * nft_ingress.ts). Commands run in the driver's namespace.
 *
 * @example
 * ```ts
 * const counters = new NetCounters(netnsExec("h1"));
 * (await counters.links()).get("uct02c10d000801")?.rx.bytes;
 * (await counters.ruleDrops()).get("uct02c10d000801")?.get("mac-spoof");
 * ```
 *
 * @module
 */
import { readNftTable } from "./host_state.ts";
import type { NftTable } from "./nft.ts";
import type { Exec } from "./types.ts";

/** One direction's counters of a link, as the kernel counts them. */
export interface Direction {
  bytes: number;
  packets: number;
  errors: number;
  dropped: number;
}

/** A link's counters; `rx`: what the host received on it. */
export interface LinkCounters {
  rx: Direction;
  tx: Direction;
}

/** What the port rules of one rule comment dropped. */
export interface RuleCount {
  packets: number;
  bytes: number;
}

/** Reads the host's link and firewall counters (see the module comment). */
export class NetCounters {
  readonly #exec: Exec;

  constructor(exec: Exec) {
    this.#exec = exec;
  }

  /** Every link's counters, by name. */
  async links(
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<Map<string, LinkCounters>> {
    const { stdout } = await this.#exec("ip", ["-s", "-j", "link", "show"], {
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? 5000,
    });
    return parseLinkStats(stdout);
  }

  /**
   * Per port: the packets and bytes each dropping rule counted so far
   * (rules of one comment summed), from both tables.
   */
  async ruleDrops(
    opts: { signal?: AbortSignal } = {},
  ): Promise<Map<string, Map<string, RuleCount>>> {
    return portRuleDrops(
      await readNftTable(this.#exec, opts.signal),
      await readNftTable(this.#exec, opts.signal, "netdev"),
    );
  }
}

function direction(d: Record<string, unknown> | undefined): Direction {
  const n = (k: string) => Number(d?.[k] ?? 0);
  return {
    bytes: n("bytes"),
    packets: n("packets"),
    errors: n("errors"),
    dropped: n("dropped"),
  };
}

/** Parses `ip -s -j link show` output into counters by link name. */
export function parseLinkStats(json: string): Map<string, LinkCounters> {
  const out = new Map<string, LinkCounters>();
  const links = JSON.parse(json) as {
    ifname?: string;
    stats64?: { rx?: Record<string, unknown>; tx?: Record<string, unknown> };
  }[];
  for (const l of links) {
    if (!l.ifname || !l.stats64) continue;
    out.set(l.ifname, {
      rx: direction(l.stats64.rx),
      tx: direction(l.stats64.tx),
    });
  }
  return out;
}

/**
 * The dropping rules' counters per port (chain `nic-<port>`) and rule
 * comment, of the bridge and the ingress table; the fingerprint rule
 * (`port ...`) and `allowed` count what passed and are left out.
 */
export function portRuleDrops(
  bridge: NftTable | null,
  ingress: NftTable | null,
): Map<string, Map<string, RuleCount>> {
  const out = new Map<string, Map<string, RuleCount>>();
  for (const t of [bridge, ingress]) {
    for (const c of t?.chains.values() ?? []) {
      if (!c.name.startsWith("nic-")) continue;
      const port = c.name.slice(4);
      let rules = out.get(port);
      if (!rules) out.set(port, rules = new Map());
      for (const r of c.rules) {
        if (!r.comment || r.comment === "allowed") continue;
        if (r.comment.startsWith("port ")) continue;
        const had = rules.get(r.comment) ?? { packets: 0, bytes: 0 };
        rules.set(r.comment, {
          packets: had.packets + r.packets,
          bytes: had.bytes + r.bytes,
        });
      }
    }
  }
  return out;
}
