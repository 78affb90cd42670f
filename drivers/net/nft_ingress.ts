/**
 * The port ingress table `netdev ucloud`, built without I/O, and the drop
 * counters of every port. One base chain per VM port (`nic-<port>`, like
 * its chain in `bridge ucloud`), hooked at the ingress of the port device
 * itself: it sees every frame the VM sends, before the bridge does.
 *
 * It drops what the bridge's prerouting hook never sees: frames to the
 * reserved link-local group `01:80:c2:00:00:0x` (STP, pause, LACP, 802.1X,
 * LLDP, ...). The bridge handles those on its local path, where LLDP and
 * (with STP on) BPDUs meet no netfilter hook at all, and learns their
 * source MAC there: a VM could move any MAC (a neighbour's, the upstream
 * router's) to its own port, or fill the FDB with made-up ones. Every
 * other frame goes through bridge prerouting (drivers/net/nft.ts), where
 * the port's chain drops a foreign source MAC before the bridge learns it.
 *
 * A chain whose rule comments are as wanted is left alone, so counters and
 * handles survive a re-sync. The script goes into the same `nft -f -`
 * transaction as the bridge table's.
 *
 * @example
 * ```ts
 * const plan = planIngress(parseTable(await nftJson("netdev")), ["uct1a2b3c4d0"]);
 * const drops = portDrops(bridgeTable, ingressTable); // Map port -> packets
 * ```
 *
 * @module
 */
import { NFT_TABLE, nicChain } from "./names.ts";
import type { NftPlan, NftTable } from "./nft.ts";

/** The rules of every port's ingress chain: body and comment. */
export const INGRESS_RULES: [body: string, comment: string][] = [
  [
    "ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 counter drop",
    "link-local",
  ],
];
/** Netdev family priority `filter`, as `nft -j` prints it. */
const NETDEV_FILTER_PRIO = 0;
const T = `netdev ${NFT_TABLE}`;

/**
 * The one script that turns `current` (null: no table) into the ingress
 * table with exactly the chains of `ports` (device names). A chain that is
 * not as wanted is made again; chains of other ports are deleted, except
 * those of the ports in `hold`, which stay as they are.
 */
export function planIngress(
  current: NftTable | null,
  ports: string[],
  hold: ReadonlySet<string> = new Set(),
): NftPlan {
  const plan: NftPlan = { script: "", added: [], changed: [], removed: [] };
  const lines: string[] = [];
  if (!current) lines.push(`add table ${T}`);
  const want = new Map(ports.map((p) => [nicChain(p), p]));
  const held = new Set([...hold].map((p) => `nic-${p}`));
  for (const chain of current?.chains.values() ?? []) {
    if (want.has(chain.name) || held.has(chain.name)) continue;
    lines.push(
      `flush chain ${T} ${chain.name}`,
      `delete chain ${T} ${chain.name}`,
    );
    plan.removed.push(chain.name);
  }
  for (const [chain, port] of want) {
    const have = current?.chains.get(chain);
    if (
      have && have.hook === "ingress" && have.prio === NETDEV_FILTER_PRIO &&
      have.policy === "accept" &&
      have.rules.length === INGRESS_RULES.length &&
      have.rules.every((r, i) => r.comment === INGRESS_RULES[i][1])
    ) continue;
    if (have) {
      lines.push(`flush chain ${T} ${chain}`, `delete chain ${T} ${chain}`);
      plan.changed.push(chain);
    } else plan.added.push(chain);
    lines.push(
      `add chain ${T} ${chain} { type filter hook ingress device "${port}" priority filter; policy accept; }`,
    );
    for (const [body, comment] of INGRESS_RULES) {
      lines.push(`add rule ${T} ${chain} ${body} comment "${comment}"`);
    }
  }
  plan.script = lines.length ? lines.join("\n") + "\n" : "";
  return plan;
}

/** The script removing the whole ingress table. */
export function deleteIngressScript(): string {
  return `delete table ${T}\n`;
}

/**
 * Packets dropped so far per port (device name): the counters of every
 * dropping rule of the port's chains in the bridge table (`bridge`) and
 * the ingress table (`ingress`); the first rule (the fingerprint) and
 * `allowed` count what passed and are left out. Only ports with a chain.
 */
export function portDrops(
  bridge: NftTable | null,
  ingress: NftTable | null,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of [bridge, ingress]) {
    for (const c of t?.chains.values() ?? []) {
      if (!c.name.startsWith("nic-")) continue;
      const port = c.name.slice(4);
      const dropped = c.rules
        .filter((r) =>
          r.comment !== "allowed" && !r.comment?.startsWith("port ")
        )
        .reduce((n, r) => n + r.packets, 0);
      out.set(port, (out.get(port) ?? 0) + dropped);
    }
  }
  return out;
}
