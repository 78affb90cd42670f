/**
 * Tests of drivers/net/nft_ingress.ts: the per-port ingress chains planned
 * against the current table, and the drop counters of a port.
 */
import assert from "node:assert/strict";
import { INGRESS_RULES, planIngress, portDrops } from "./nft_ingress.ts";
import type { NftChain, NftTable } from "./nft.ts";

function chain(name: string, comments: string[], packets = 5): NftChain {
  return {
    name,
    handle: 1,
    hook: "ingress",
    prio: 0,
    policy: "accept",
    rules: comments.map((comment, i) => ({
      handle: 10 + i,
      comment,
      packets,
      bytes: 100 * packets,
    })),
  };
}

function table(...chains: NftChain[]): NftTable {
  return {
    chains: new Map(chains.map((c) => [c.name, c])),
    hasMap: false,
    ports: new Map(),
  };
}

const wanted = INGRESS_RULES.map(([, c]) => c);

Deno.test("planIngress() from nothing: the table and one base chain per port, hooked on the port device", () => {
  const plan = planIngress(null, ["uct1234abcd0"]);
  assert.deepEqual(plan.added, ["nic-uct1234abcd0"]);
  assert.equal(
    plan.script,
    [
      "add table netdev ucloud",
      'add chain netdev ucloud nic-uct1234abcd0 { type filter hook ingress device "uct1234abcd0" priority filter; policy accept; }',
      'add rule netdev ucloud nic-uct1234abcd0 ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 counter drop comment "link-local"',
      "",
    ].join("\n"),
  );
});

Deno.test("planIngress() leaves chains as wanted alone, removes other ports' and remakes a wrong one", () => {
  const ok = chain("nic-uctaaaaaaaa0", wanted);
  assert.equal(planIngress(table(ok), ["uctaaaaaaaa0"]).script, "");
  const plan = planIngress(
    table(ok, chain("nic-gone", wanted), chain("nic-uctbbbbbbbb0", ["old"])),
    ["uctaaaaaaaa0", "uctbbbbbbbb0"],
  );
  assert.deepEqual(plan.removed, ["nic-gone"]);
  assert.deepEqual(plan.changed, ["nic-uctbbbbbbbb0"]);
  assert.deepEqual(plan.script.split("\n").slice(0, 5), [
    "flush chain netdev ucloud nic-gone",
    "delete chain netdev ucloud nic-gone",
    "flush chain netdev ucloud nic-uctbbbbbbbb0",
    "delete chain netdev ucloud nic-uctbbbbbbbb0",
    'add chain netdev ucloud nic-uctbbbbbbbb0 { type filter hook ingress device "uctbbbbbbbb0" priority filter; policy accept; }',
  ]);
  assert.throws(() => planIngress(null, ['x" drop']), TypeError);
});

Deno.test("portDrops() sums every dropping rule of a port in both tables, not the fingerprint or allowed", () => {
  const bridge = table(
    { ...chain("from-ports", ["ports", "fail-closed"], 9), hook: "prerouting" },
    {
      ...chain("nic-uct1", [
        "port uct1 fp=1",
        "mac-spoof",
        "nd-spoof",
        "allowed",
      ]),
      hook: undefined,
    },
  );
  const ingress = table(
    chain("nic-uct1", wanted, 2),
    chain("nic-uct2", wanted, 0),
  );
  assert.deepEqual(
    portDrops(bridge, ingress),
    new Map([["uct1", 5 + 5 + 2], ["uct2", 0]]),
  );
  assert.deepEqual(portDrops(null, null), new Map());
});
