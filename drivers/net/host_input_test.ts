/**
 * Tests of drivers/net/host_input.ts: the host input filter's spec and the
 * nftables plan that brings a table to it.
 */
import assert from "node:assert/strict";
import {
  HOST_TABLE,
  type HostInputSpec,
  hostInputSpec,
  planHostInput,
} from "./host_input.ts";
import type { HostTable } from "./host_input_table.ts";
import type { NetworkSpec } from "./types.ts";

const T = `inet ${HOST_TABLE}`;

function net(id: string, o: Partial<NetworkSpec>): NetworkSpec {
  return {
    id,
    kind: "private",
    prefix: "fd00:1::/64",
    ra: true,
    dhcp: { v6: false, v4: false },
    ...o,
  };
}

const spec: HostInputSpec = hostInputSpec({
  networks: [
    net("mc", { vni: 0x101, mode: "multicast", group: "ff05::101" }),
    net("uc", { vni: 0x102, mode: "unicast" }),
    net("pub", { kind: "public", bridge: "br0" }),
  ],
  ports: [
    { name: "uct1", network: "mc", mac: "02:00:00:00:00:01", ipv6: "fd00::1" },
    { name: "p1", network: "pub", mac: "02:00:00:00:00:AA", ipv6: "fd00::2" },
  ],
  peers: { uc: ["fd00::7"], mc: ["fd00::9"] },
  underlay: "eth0",
  vxlanPort: 4789,
});

/** The table `script` would make, as `parseHostTable` would read it. */
function tableOf(script: string): HostTable {
  const t: HostTable = { comments: new Map(), elements: new Map() };
  for (const line of script.split("\n")) {
    let m = line.match(/^add chain \S+ \S+ (\S+)/);
    if (m) t.comments.set(m[1], []);
    m = line.match(/^add set \S+ \S+ (\S+)/);
    if (m) t.elements.set(m[1], new Set());
    m = line.match(/^add rule \S+ \S+ (\S+) .* comment "([^"]*)"$/);
    if (m) t.comments.get(m[1])!.push(m[2]);
  }
  return t;
}

Deno.test("hostInputSpec() takes public ports' MACs, multicast VNIs and unicast peers", () => {
  assert.deepEqual(spec, {
    underlay: "eth0",
    vxlanPort: 4789,
    publicMacs: ["02:00:00:00:00:aa"],
    unicast: [[0x102, "fd00::7"]],
    multicast: [0x101],
  });
});

Deno.test("planHostInput() from nothing: table, sets, hooked chains, rules (hop limit 1 on metadata replies), elements; VXLAN only on the underlay", () => {
  const script = planHostInput(null, spec);
  const lines = script.trim().split("\n");
  assert.equal(lines[0], `add table ${T}`);
  assert.ok(
    lines.includes(
      `add chain ${T} input { type filter hook input priority filter; policy accept; }`,
    ),
  );
  assert.ok(lines.some((l) => /iifname != "eth0" counter drop/.test(l)));
  assert.ok(
    lines.includes(`add rule ${T} from-vms counter drop comment "from-vms"`),
  );
  // The metadata service's replies leave with hop limit 1.
  const output = lines.filter((l) => l.startsWith(`add rule ${T} output`))
    .map((l) => l.replace(/ fp=[0-9a-f]{8}"$/, '"'));
  assert.deepEqual(output, [
    `add rule ${T} output ip6 saddr { fe80::a9fe:a9fe, fd00:ec2::254 } tcp sport 80 counter ip6 hoplimit set 1 comment "metadata-hoplimit"`,
    `add rule ${T} output ip saddr 169.254.169.254 tcp sport 80 counter ip ttl set 1 comment "metadata-hoplimit"`,
  ]);
  assert.deepEqual(lines.filter((l) => l.startsWith("add element")), [
    `add element ${T} public_macs { 02:00:00:00:00:aa }`,
    `add element ${T} vxlan_unicast { 258 . fd00::7 }`,
    `add element ${T} vxlan_multicast { 257 }`,
  ]);
  // Without an underlay: no VXLAN chain, the port is left alone.
  const none = planHostInput(null, { ...spec, underlay: null });
  assert.doesNotMatch(none, /4789|chain \S+ \S+ vxlan|element \S+ \S+ vxlan/);
});

Deno.test("planHostInput() leaves a table as wanted alone, changes only elements, rebuilds changed rules, removes the table", () => {
  const made = planHostInput(null, spec);
  const t = tableOf(made);
  t.elements.set("public_macs", new Set(["02:00:00:00:00:aa"]));
  t.elements.set(
    "vxlan_unicast",
    new Set([`258 . ${(0xfd00n << 112n | 7n).toString(16)}`]),
  );
  t.elements.set("vxlan_multicast", new Set(["257"]));
  assert.equal(planHostInput(t, spec), "");
  // A new multicast VNI: one element added, nothing else.
  assert.equal(
    planHostInput(t, { ...spec, multicast: [0x101, 0x103] }),
    `add element ${T} vxlan_multicast { 259 }\n`,
  );
  // A peer gone: that set flushed and filled, rules untouched.
  assert.equal(
    planHostInput(t, { ...spec, unicast: [[0x102, "fd00::8"]] }),
    `flush set ${T} vxlan_unicast\nadd element ${T} vxlan_unicast { 258 . fd00::8 }\n`,
  );
  // Another underlay device: the table is rebuilt in the same transaction.
  const moved = planHostInput(t, { ...spec, underlay: "eth1" });
  assert.match(moved, new RegExp(`^delete table ${T}\nadd table ${T}\n`));
  assert.match(moved, /iifname != "eth1"/);
  assert.equal(planHostInput(t, null), `delete table ${T}\n`);
  assert.equal(planHostInput(null, null), "");
});
