/**
 * Tests of drivers/net/nft_table.ts: parsing `nft -j` output of a table.
 */
import assert from "node:assert/strict";
import { parseTable } from "./nft_table.ts";

Deno.test("parseTable() reads chains, rule comments, counters and map elements", () => {
  const t = parseTable(JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6", json_schema_version: 1 } },
      { table: { family: "bridge", name: "ucloud", handle: 1 } },
      {
        map: {
          family: "bridge",
          name: "ports",
          table: "ucloud",
          type: "ifname",
          map: "verdict",
          handle: 3,
          elem: [["uct1", { jump: { target: "nic-uct1" } }]],
        },
      },
      {
        chain: {
          family: "bridge",
          table: "ucloud",
          name: "from-ports",
          handle: 1,
          type: "filter",
          hook: "prerouting",
          prio: -200,
          policy: "accept",
        },
      },
      {
        chain: {
          family: "bridge",
          table: "ucloud",
          name: "nic-uct1",
          handle: 2,
        },
      },
      {
        rule: {
          family: "bridge",
          table: "ucloud",
          chain: "nic-uct1",
          handle: 6,
          comment: "mac-spoof",
          expr: [
            { match: { op: "!=", left: {}, right: "02:c1:0d:00:00:01" } },
            { counter: { packets: 4, bytes: 280 } },
            { drop: null },
          ],
        },
      },
    ],
  }));
  assert.deepEqual(t.ports, new Map([["uct1", "nic-uct1"]]));
  assert.equal(t.hasMap, true);
  assert.equal(t.chains.get("from-ports")?.hook, "prerouting");
  assert.deepEqual(t.chains.get("nic-uct1")?.rules, [
    { handle: 6, comment: "mac-spoof", packets: 4, bytes: 280 },
  ]);
  assert.throws(() => parseTable("{}"), /Not nft JSON/);
});
