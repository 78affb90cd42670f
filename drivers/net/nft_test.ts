/**
 * Tests of drivers/net/nft.ts: per-port anti-spoofing rules, the plan that
 * brings a bridge table to them (parsing: nft_table_test.ts).
 */
import assert from "node:assert/strict";
import {
  BASE_CHAIN,
  DHCP_CHAIN,
  type NftTable,
  planTable,
  type PortRules,
  portRules,
  serviceAddresses,
} from "./nft.ts";
import { META_IN, META_OUT, metadataChains } from "./nft_metadata.ts";
import type { NetworkSpec, PortSpec } from "./types.ts";

const net6: NetworkSpec = {
  id: "n6",
  kind: "private",
  prefix: "fdc1:d00:0:5::/64",
  vni: 5,
  mode: "multicast",
  group: "ff05::5",
  ra: true,
  dhcp: { v6: false, v4: false },
};
const net4: NetworkSpec = { ...net6, id: "n4", ipv4: "198.51.100.0/24" };
const port: PortSpec = {
  name: "uct1234abcd0",
  network: "n6",
  mac: "02:C1:0D:12:34:56",
  ipv6: "fdc1:d00:0:5:c1:dff:fe12:3456",
};

/** The table the kernel would hold after applying `wanted` from scratch. */
function tableOf(wanted: PortRules[]): NftTable {
  let handle = 1;
  const t: NftTable = { chains: new Map(), hasMap: true, ports: new Map() };
  t.chains.set(BASE_CHAIN, {
    name: BASE_CHAIN,
    handle: handle++,
    hook: "prerouting",
    prio: -200,
    policy: "accept",
    rules: ["ports", "fail-closed"].map((comment) => ({
      handle: handle++,
      comment,
      packets: 0,
      bytes: 0,
    })),
  });
  t.chains.set(DHCP_CHAIN, {
    name: DHCP_CHAIN,
    handle: handle++,
    hook: "forward",
    prio: -200,
    policy: "accept",
    rules: ["dhcp-out", "dhcp-in"].map((comment) => ({
      handle: handle++,
      comment,
      packets: 0,
      bytes: 0,
    })),
  });
  for (const c of metadataChains()) {
    t.chains.set(c.name, {
      name: c.name,
      handle: handle++,
      hook: c.hook,
      prio: -200,
      policy: "accept",
      rules: c.rules.map(([, comment]) => ({
        handle: handle++,
        comment,
        packets: 3,
        bytes: 300,
      })),
    });
  }
  for (const w of wanted) {
    t.chains.set(w.chain, {
      name: w.chain,
      handle: handle++,
      rules: w.comments.map((comment) => ({
        handle: handle++,
        comment,
        packets: 7,
        bytes: 700,
      })),
    });
    t.ports.set(w.port, w.chain);
  }
  return t;
}

Deno.test("portRules() on an IPv6-only network: anti-spoofing, no IPv4, accept the rest", () => {
  const r = portRules(net6, port);
  assert.equal(r.chain, "nic-uct1234abcd0");
  assert.deepEqual(r.comments, [
    `port uct1234abcd0 fp=${r.fingerprint}`,
    "mac-spoof",
    "ip4-none",
    "ethertype",
    "ip6-spoof",
    "ip6-unspec",
    "ip6-unspec",
    "ip6-unspec",
    "nd-spoof",
    "ra",
    "nd-redirect",
    "dhcp6-server",
    "allowed",
  ]);
  assert.equal(r.rules.length, r.comments.length);
  assert.ok(r.rules.every((x) => x.includes("counter")));
  const text = r.rules.join("\n");
  assert.match(text, /ether saddr != 02:c1:0d:12:34:56 counter drop/);
  // Only the port's address and its EUI-64 link-local as a source.
  assert.match(
    text,
    /ip6 saddr != \{ ::, fe80::c1:dff:fe12:3456, fdc1:d00:0:5:c1:dff:fe12:3456 \} counter drop comment "ip6-spoof"/,
  );
  // NAs only for those; `::` only for their DAD and MLD reports.
  const own =
    "\\{ 0xfe8000000000000000c10dfffe123456, 0xfdc10d000000000500c10dfffe123456 \\}";
  assert.match(
    text,
    new RegExp(
      `nd-neighbor-advert @th,64,128 != ${own} counter drop comment "nd-spoof"`,
    ),
  );
  assert.match(
    text,
    new RegExp(
      `ip6 saddr :: icmpv6 type nd-neighbor-solicit @th,64,128 != ${own} counter drop`,
    ),
  );
  assert.match(
    text,
    /ip6 saddr :: icmpv6 type != \{ nd-neighbor-solicit, mld-listener-report, mld2-listener-report \} counter drop/,
  );
  assert.match(text, /ip6 saddr :: meta l4proto != ipv6-icmp counter drop/);
  // Nothing to a DHCPv6 client port, from any source port.
  assert.match(text, /udp dport 546 counter drop comment "dhcp6-server"/);
  assert.match(
    text,
    /ether type \{ ip, arp \} counter drop comment "ip4-none"/,
  );
  assert.match(r.rules.at(-1)!, /^counter accept/);
});

Deno.test("portRules() on a legacy network: ARP and IPv4 bound to the port's address", () => {
  const r = portRules(net4, { ...port, network: "n4", ipv4: "198.51.100.7" });
  assert.ok(!r.comments.includes("ip4-none"));
  assert.equal(r.comments.filter((c) => c === "arp-spoof").length, 2);
  const text = r.rules.join("\n");
  assert.match(text, /arp saddr ether != 02:c1:0d:12:34:56 counter drop/);
  assert.match(text, /arp saddr ip != \{ 0\.0\.0\.0, 198\.51\.100\.7 \}/);
  assert.match(text, /ip saddr != \{ 0\.0\.0\.0, 198\.51\.100\.7 \}/);
  // 0.0.0.0: ARP probes for the port's own address, DHCP requests, IGMP.
  assert.match(
    text,
    /arp saddr ip 0\.0\.0\.0 arp daddr ip != 198\.51\.100\.7 counter drop comment "ip4-unspec"/,
  );
  assert.match(
    text,
    /ip saddr 0\.0\.0\.0 meta l4proto != \{ udp, igmp \} counter drop/,
  );
  assert.match(text, /ip saddr 0\.0\.0\.0 udp dport != 67 counter drop/);
  assert.match(text, /udp dport 68 counter drop comment "dhcp4-server"/);
  assert.match(
    text,
    /udp dport 67 @th,288,48 != 0x02c10d123456 counter drop comment "dhcp4-chaddr"/,
  );
  assert.match(
    text,
    /ip frag-off & 0x2000 != 0 udp dport 67 counter drop comment "dhcp4-chaddr"/,
  );
  // A port without IPv4 on a legacy network gets no IPv4 at all.
  assert.ok(portRules(net4, port).comments.includes("ip4-none"));
  for (const ipv4 of ["198.51.100.7; drop", "300.1.1.1", "198.51.100.07"]) {
    assert.throws(() => portRules(net4, { ...port, ipv4 }), /bad IPv4/, ipv4);
  }
});

Deno.test("portRules() refuses a port holding a service address (metadata, the network's server)", () => {
  const on4 = { ...port, network: "n4", ipv4: "198.51.100.7" };
  for (
    const [net, p] of [
      [net6, { ...port, ipv6: "fd00:ec2::254" }],
      [net6, { ...port, ipv6: "fdc1:d00:0:5::1" }],
      [net4, { ...on4, ipv4: "198.51.100.1" }],
      [net4, { ...on4, ipv4: "169.254.169.254" }],
    ] as const
  ) {
    assert.throws(() => portRules(net, p), /is a service address/);
  }
  assert.deepEqual(serviceAddresses(net4), [
    "169.254.169.254",
    "fd00:ec2::254",
    "fe80::a9fe:a9fe",
    "fdc1:d00:0:5::1",
    "198.51.100.1",
  ]);
});

Deno.test("portRules() fingerprints what the rules enforce", () => {
  const fp = portRules(net6, port).fingerprint;
  assert.equal(portRules(net6, { ...port }).fingerprint, fp);
  assert.notEqual(
    portRules(net6, { ...port, mac: "02:c1:0d:12:34:57" }).fingerprint,
    fp,
  );
  assert.notEqual(
    portRules(net6, { ...port, ipv6: "fdc1:d00:0:5::2" }).fingerprint,
    fp,
  );
  assert.notEqual(
    portRules(net4, { ...port, ipv4: "198.51.100.7" }).fingerprint,
    fp,
  );
  assert.throws(() => portRules(net6, { ...port, ipv6: "x" }), TypeError);
});

Deno.test("planTable() from nothing: table, map, base chains, port chain, map element in that order", () => {
  const r = portRules(net6, port);
  const plan = planTable(null, [r]);
  const lines = plan.script.trim().split("\n");
  assert.deepEqual(lines.slice(0, 8), [
    "add table bridge ucloud",
    "add map bridge ucloud ports { type ifname : verdict; }",
    "add chain bridge ucloud from-ports { type filter hook prerouting priority filter; policy accept; }",
    'add rule bridge ucloud from-ports iifname vmap @ports comment "ports"',
    'add rule bridge ucloud from-ports iifname "uct*" counter drop comment "fail-closed"',
    "add chain bridge ucloud dhcp-local { type filter hook forward priority filter; policy accept; }",
    'add rule bridge ucloud dhcp-local iifname "ucd*" oifname != "uct*" counter drop comment "dhcp-out"',
    'add rule bridge ucloud dhcp-local oifname "ucd*" iifname != "uct*" counter drop comment "dhcp-in"',
  ]);
  // The metadata chains (drivers/net/nft_metadata.ts), then the port's.
  let at = 8;
  for (const c of metadataChains()) {
    assert.equal(
      lines[at++],
      `add chain bridge ucloud ${c.name} { type filter hook ${c.hook} priority filter; policy accept; }`,
    );
    for (const [body, comment] of c.rules) {
      assert.equal(
        lines[at++],
        `add rule bridge ucloud ${c.name} ${body} comment "${comment}"`,
      );
    }
  }
  assert.equal(lines[at], `add chain bridge ucloud ${r.chain}`);
  assert.deepEqual(
    lines.slice(at + 1, at + 1 + r.rules.length),
    r.rules.map((x) => `add rule bridge ucloud ${r.chain} ${x}`),
  );
  assert.equal(
    lines.at(-1),
    `add element bridge ucloud ports { "${port.name}" : jump ${r.chain} }`,
  );
  assert.deepEqual(plan.added, [r.chain]);
  assert.deepEqual([plan.changed, plan.removed], [[], []]);
});

Deno.test("planTable() leaves a table that is as wanted alone (empty script)", () => {
  const r = portRules(net6, port);
  const plan = planTable(tableOf([r]), [r]);
  assert.deepEqual(plan, { script: "", added: [], changed: [], removed: [] });
});

Deno.test("planTable() rewrites only a changed port's chain, in place", () => {
  const a = portRules(net6, port);
  const b = portRules(net6, { ...port, name: "uct0000000010" });
  const a2 = portRules(net6, { ...port, ipv6: "fdc1:d00:0:5::99" });
  const plan = planTable(tableOf([a, b]), [a2, b]);
  const lines = plan.script.trim().split("\n");
  assert.equal(lines[0], `flush chain bridge ucloud ${a.chain}`);
  assert.equal(lines.length, 1 + a2.rules.length);
  assert.ok(!plan.script.includes(b.chain), "unchanged port touched");
  assert.ok(!plan.script.includes("element"), "map element re-added");
  assert.deepEqual(plan.changed, [a.chain]);
  // Rule comments differing (e.g. a rule deleted by hand) count as changed.
  const t = tableOf([a]);
  t.chains.get(a.chain)!.rules.splice(2, 1);
  assert.deepEqual(planTable(t, [a]).changed, [a.chain]);
});

Deno.test("planTable() removes a port: element first, then its chain", () => {
  const a = portRules(net6, port);
  const plan = planTable(tableOf([a]), []);
  assert.deepEqual(plan.script.trim().split("\n"), [
    `delete element bridge ucloud ports { "${port.name}" }`,
    `flush chain bridge ucloud ${a.chain}`,
    `delete chain bridge ucloud ${a.chain}`,
  ]);
  assert.deepEqual(plan.removed, [a.chain]);
});

Deno.test("planTable() leaves the chains and elements of held ports as they are; re-makes a hooked port chain", () => {
  const a = portRules(net6, port);
  const b = portRules(net6, { ...port, name: "uct1234abcd1" });
  // b held: neither removed (not wanted) nor changed.
  assert.equal(planTable(tableOf([a, b]), [a], new Set([b.port])).script, "");
  const changed = tableOf([a, b]);
  changed.chains.get(b.chain)!.rules.pop();
  assert.equal(planTable(changed, [a], new Set([b.port])).script, "");
  // A chain of a port's name at a hook (not ours) cannot be jumped to.
  const hooked = tableOf([a]);
  hooked.chains.get(a.chain)!.hook = "forward";
  const lines = planTable(hooked, [a]).script.trim().split("\n");
  assert.deepEqual(lines.slice(0, 3), [
    `flush chain bridge ucloud ${a.chain}`,
    `delete chain bridge ucloud ${a.chain}`,
    `add chain bridge ucloud ${a.chain}`,
  ]);
});

Deno.test("planTable() repairs a base chain and a map that are not as wanted", () => {
  const t = tableOf([]);
  t.chains.get(BASE_CHAIN)!.rules.pop();
  assert.deepEqual(planTable(t, []).script.trim().split("\n"), [
    "add chain bridge ucloud from-ports { type filter hook prerouting priority filter; policy accept; }",
    "flush chain bridge ucloud from-ports",
    'add rule bridge ucloud from-ports iifname vmap @ports comment "ports"',
    'add rule bridge ucloud from-ports iifname "uct*" counter drop comment "fail-closed"',
  ]);
  const hooked = tableOf([]);
  hooked.chains.get(BASE_CHAIN)!.hook = "forward";
  assert.match(
    planTable(hooked, []).script,
    /^delete chain bridge ucloud from-ports\n/,
  );
  // The DHCP isolation chain is repaired alone (rules deleted by hand).
  const noDhcp = tableOf([]);
  noDhcp.chains.get(DHCP_CHAIN)!.rules = [];
  assert.deepEqual(planTable(noDhcp, []).script.trim().split("\n"), [
    "add chain bridge ucloud dhcp-local { type filter hook forward priority filter; policy accept; }",
    "flush chain bridge ucloud dhcp-local",
    'add rule bridge ucloud dhcp-local iifname "ucd*" oifname != "uct*" counter drop comment "dhcp-out"',
    'add rule bridge ucloud dhcp-local oifname "ucd*" iifname != "uct*" counter drop comment "dhcp-in"',
  ]);
  // A metadata chain whose rules are not the wanted ones (an older
  // fingerprint) is rebuilt alone; the other keeps its handles.
  const old = tableOf([]);
  old.chains.get(META_IN)!.rules[0].comment = `${META_IN} fp=00000000`;
  const fix = planTable(old, []).script.trim().split("\n");
  assert.equal(
    fix[0],
    `add chain bridge ucloud ${META_IN} { type filter hook input priority filter; policy accept; }`,
  );
  assert.equal(fix[1], `flush chain bridge ucloud ${META_IN}`);
  assert.equal(fix.length, 2 + metadataChains()[0].rules.length);
  assert.ok(!fix.some((l) => l.includes(META_OUT)));
  const noMap = { ...tableOf([]), hasMap: false };
  assert.match(planTable(noMap, []).script, /^add map bridge ucloud ports/);
  assert.throws(
    () => planTable(null, [portRules(net6, port), portRules(net6, port)]),
    /Duplicate port/,
  );
});
