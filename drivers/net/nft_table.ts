/**
 * nftables tables of ucloud as read from the kernel: `parseTable` turns
 * `nft -j list table <family> ucloud` into chains, rule comments and
 * counters, and the elements of the `ports` map (drivers/net/nft.ts).
 *
 * @example
 * ```ts
 * const t = parseTable(stdout);
 * t.chains.get("nic-uct1a2b3c4d0")?.rules[1].packets;
 * ```
 *
 * @module
 */

/** The map `ifname : verdict` from port names to `jump nic-<port>`. */
export const PORTS_MAP = "ports";

/** One rule as read from the kernel. */
export interface NftRule {
  handle: number;
  comment?: string;
  /** From the rule's first counter; 0 without one. */
  packets: number;
  bytes: number;
}

/** One chain as read from the kernel. */
export interface NftChain {
  name: string;
  handle: number;
  hook?: string;
  prio?: number;
  policy?: string;
  rules: NftRule[];
}

/** The table `bridge ucloud` as read from the kernel. */
export interface NftTable {
  chains: Map<string, NftChain>;
  /** Whether the `ports` map exists. */
  hasMap: boolean;
  /** Elements of the `ports` map: port name → jump target chain. */
  ports: Map<string, string>;
}

type Json = Record<string, unknown>;

/**
 * Parses `nft -j list table bridge ucloud` output. Throws a TypeError on
 * text that is not nft JSON.
 */
export function parseTable(json: string): NftTable {
  const doc = JSON.parse(json) as { nftables?: Json[] };
  if (!Array.isArray(doc.nftables)) {
    throw new TypeError("Not nft JSON: no nftables array");
  }
  const table: NftTable = {
    chains: new Map(),
    hasMap: false,
    ports: new Map(),
  };
  const rules: Json[] = [];
  for (const item of doc.nftables) {
    if (item.chain) {
      const c = item.chain as Json;
      table.chains.set(String(c.name), {
        name: String(c.name),
        handle: Number(c.handle),
        hook: c.hook as string | undefined,
        prio: c.prio as number | undefined,
        policy: c.policy as string | undefined,
        rules: [],
      });
    } else if (item.map && (item.map as Json).name === PORTS_MAP) {
      table.hasMap = true;
      for (const e of ((item.map as Json).elem ?? []) as unknown[]) {
        const [key, value] = Array.isArray(e) ? e : [];
        const name = typeof key === "string"
          ? key
          : ((key as Json)?.elem as Json)?.val;
        const target = ((value as Json)?.jump as Json)?.target ??
          ((value as Json)?.goto as Json)?.target;
        if (typeof name === "string") {
          table.ports.set(name, typeof target === "string" ? target : "");
        }
      }
    } else if (item.rule) rules.push(item.rule as Json);
  }
  for (const r of rules) {
    const chain = table.chains.get(String(r.chain));
    if (!chain) continue;
    const counter = ((r.expr ?? []) as Json[]).find((e) => e.counter)
      ?.counter as Json | undefined;
    chain.rules.push({
      handle: Number(r.handle),
      comment: r.comment as string | undefined,
      packets: Number(counter?.packets ?? 0),
      bytes: Number(counter?.bytes ?? 0),
    });
  }
  return table;
}
