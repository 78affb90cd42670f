/**
 * Tests of drivers/net/counters.ts without I/O: link counters from `ip -s
 * -j link show`, and the port rules' drops by port and rule comment.
 */
import assert from "node:assert/strict";
import { parseLinkStats, portRuleDrops } from "./counters.ts";
import type { NftTable } from "./nft_table.ts";

Deno.test("parseLinkStats() reads each link's rx and tx counters and skips links without stats", () => {
  const links = parseLinkStats(JSON.stringify([
    {
      ifname: "uct02c10d000801",
      stats64: {
        rx: { bytes: 1000, packets: 10, errors: 1, dropped: 2, multicast: 3 },
        tx: { bytes: 500, packets: 5, errors: 0, dropped: 4 },
      },
    },
    { ifname: "lo" },
  ]));
  assert.deepEqual([...links.keys()], ["uct02c10d000801"]);
  assert.deepEqual(links.get("uct02c10d000801"), {
    rx: { bytes: 1000, packets: 10, errors: 1, dropped: 2 },
    tx: { bytes: 500, packets: 5, errors: 0, dropped: 4 },
  });
});

Deno.test("portRuleDrops() sums each dropping rule by port and comment over both tables, leaving out the fingerprint and allowed", () => {
  const chain = (name: string, rules: [string, number][]) => ({
    name,
    handle: 1,
    rules: rules.map(([comment, packets], i) => ({
      handle: i + 2,
      comment,
      packets,
      bytes: packets * 100,
    })),
  });
  const table = (chains: ReturnType<typeof chain>[]): NftTable => ({
    chains: new Map(chains.map((c) => [c.name, c])),
    hasMap: true,
    ports: new Map(),
  });
  const bridge = table([
    chain("from-ports", [["fail-closed", 9]]),
    chain("nic-uct1", [
      ["port uct1 fp=0", 50],
      ["mac-spoof", 3],
      ["arp-spoof", 1],
      ["arp-spoof", 2],
      ["allowed", 40],
    ]),
  ]);
  const ingress = table([chain("nic-uct1", [["link-local", 4]])]);
  const drops = portRuleDrops(bridge, ingress);
  assert.deepEqual([...drops.keys()], ["uct1"]);
  assert.deepEqual(Object.fromEntries(drops.get("uct1")!), {
    "mac-spoof": { packets: 3, bytes: 300 },
    "arp-spoof": { packets: 3, bytes: 300 },
    "link-local": { packets: 4, bytes: 400 },
  });
  assert.equal(portRuleDrops(null, null).size, 0);
});
