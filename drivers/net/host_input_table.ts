/**
 * The host input policy's table (`inet ucloud_host`, drivers/net/host_input.ts)
 * as read from the kernel: the rule comments of each chain and each set's
 * elements in a canonical form (`elementKey`), so that a plan can tell
 * what differs from what it wants.
 *
 * @example
 * ```ts
 * const t = parseHostTable(stdout); // nft -j list table inet ucloud_host
 * t.elements.get("public_macs")?.has(elementKey("02:00:00:00:00:01"));
 * ```
 *
 * @module
 */
import { normalizeMac, parseIpv6 } from "../../core/netaddr.ts";

/** The table as read from the kernel. */
export interface HostTable {
  /** Rule comments per chain, in order. */
  comments: Map<string, string[]>;
  /** Elements per set, canonical (see {@linkcode elementKey}). */
  elements: Map<string, Set<string>>;
}

type Json = Record<string, unknown>;

/** Parses `nft -j list table inet ucloud_host` (drivers/net/host_input.ts). */
export function parseHostTable(json: string): HostTable {
  const doc = JSON.parse(json) as { nftables?: Json[] };
  if (!Array.isArray(doc.nftables)) {
    throw new TypeError("Not nft JSON: no nftables array");
  }
  const t: HostTable = { comments: new Map(), elements: new Map() };
  for (const item of doc.nftables) {
    if (item.chain) t.comments.set(String((item.chain as Json).name), []);
    if (item.set) {
      const s = item.set as Json;
      t.elements.set(
        String(s.name),
        new Set(((s.elem ?? []) as unknown[]).map(elementKey)),
      );
    }
  }
  for (const item of doc.nftables) {
    const r = item.rule as Json | undefined;
    if (r) t.comments.get(String(r.chain))?.push(String(r.comment ?? ""));
  }
  return t;
}

/**
 * One set element as a comparable string: a MAC lower-case, a number in
 * decimal, an IPv6 address as its 128-bit value, a concatenation joined
 * by " . ".
 */
export function elementKey(e: unknown): string {
  if (typeof e === "number") return String(e);
  if (typeof e === "string") {
    if (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(e)) return normalizeMac(e);
    if (e.includes(":")) return parseIpv6(e).toString(16);
    return String(Number(e));
  }
  const c = (e as Json)?.concat;
  if (Array.isArray(c)) return c.map(elementKey).join(" . ");
  const elem = (e as Json)?.elem as Json | undefined;
  if (elem && "val" in elem) return elementKey(elem.val);
  throw new TypeError(`Unknown set element ${JSON.stringify(e)}`);
}
