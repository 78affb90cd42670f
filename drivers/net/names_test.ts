/**
 * Tests of drivers/net/names.ts: the names of bridges, VXLAN and DHCP devices,
 * network namespaces and taps, and the device name checks.
 */
import assert from "node:assert/strict";
import {
  bridgeOf,
  checkDeviceName,
  dhcpDeviceOf,
  dhcpNetnsOf,
  fnv1a32,
  isDhcpDeviceName,
  isDhcpNetnsName,
  isTapName,
  legacyTapName,
  nicChain,
  nicTapName,
  tapName,
  vxlanOf,
} from "./names.ts";
import type { NetworkSpec } from "./types.ts";

const priv: NetworkSpec = {
  id: "n1",
  kind: "private",
  prefix: "fdc1:d00:0:5::/64",
  vni: 0xabcdef,
  mode: "multicast",
  group: "ff05::abcdef",
  ra: true,
  dhcp: { v6: false, v4: false },
};
const pub: NetworkSpec = {
  id: "p1",
  kind: "public",
  prefix: "2001:db8::/64",
  bridge: "br-public",
  ra: false,
  dhcp: { v6: false, v4: false },
};

Deno.test("bridgeOf() and vxlanOf() name private networks by VNI, public ones by their bridge", () => {
  assert.equal(bridgeOf(priv), "ucbabcdef");
  assert.equal(vxlanOf(priv), "ucvabcdef");
  assert.equal(bridgeOf({ ...priv, vni: 5 }), "ucb5");
  assert.equal(bridgeOf(pub), "br-public");
  assert.throws(() => vxlanOf(pub), /public/);
  assert.throws(() => bridgeOf({ ...pub, bridge: undefined }), /no bridge/);
  assert.throws(() => bridgeOf({ ...priv, vni: undefined }), /no VNI/);
  assert.throws(() => bridgeOf({ ...priv, vni: 0x1000000 }), RangeError);
  assert.throws(() => bridgeOf({ ...pub, bridge: "br;rm -rf" }), /Bad device/);
});

Deno.test("dhcpDeviceOf() and dhcpNetnsOf() name a network's DHCP server by VNI or by the hash of the public network's id", () => {
  assert.equal(dhcpDeviceOf(priv), "ucdabcdef");
  assert.equal(dhcpDeviceOf({ ...priv, vni: 5 }), "ucd5");
  assert.equal(dhcpDeviceOf(pub), `ucd${fnv1a32("p1").toString(16)}`);
  assert.equal(dhcpDeviceOf(pub).length, 11);
  assert.equal(dhcpNetnsOf(priv), "ucdabcdef");
  assert.equal(dhcpNetnsOf(priv, "uc-1a2b-h1"), "uc-1a2b-h1-ucdabcdef");
  for (const n of [dhcpDeviceOf(priv), dhcpDeviceOf(pub), "ucd5"]) {
    assert.ok(isDhcpDeviceName(n), n);
  }
  for (const n of ["ucd", "ucdabcdef0", "ucd5x", "uct5", "xucd5"]) {
    assert.ok(!isDhcpDeviceName(n), n);
  }
  assert.ok(isDhcpNetnsName("uc-1a2b-h1-ucd5", "uc-1a2b-h1"));
  assert.ok(!isDhcpNetnsName("uc-1a2b-h2-ucd5", "uc-1a2b-h1"));
  assert.ok(!isDhcpNetnsName("uc-1a2b-h1-ucd5"));
  assert.ok(isDhcpNetnsName("ucd5"));
});

Deno.test("tapName() is uct + the 12 hex digits of the MAC", () => {
  const t = tapName("02:C1:0D:12:34:5a");
  assert.equal(t, "uct02c10d12345a");
  assert.equal(t.length, 15);
  checkDeviceName(t);
  assert.ok(isTapName(t));
  assert.notEqual(tapName("02:c1:0d:00:00:01"), tapName("02:c1:0d:00:00:02"));
  assert.throws(() => tapName("vm-1"), TypeError);
});

Deno.test("legacyTapName() is uct + 8 hex digits of FNV-1a(vm id) + the slot", () => {
  const t = legacyTapName("vm-1", 3);
  assert.match(t, /^uct[0-9a-f]{8}3$/);
  assert.equal(t.length, 12);
  assert.equal(legacyTapName("a", 0), `uct${(0xe40c292c).toString(16)}0`);
  assert.ok(isTapName(t));
  assert.throws(() => legacyTapName("vm-1", 10), RangeError);
  assert.throws(() => legacyTapName("vm-1", -1), RangeError);
  // Ids whose 32-bit hashes collide (found by brute force): one tap name.
  assert.equal(legacyTapName("vm-90169", 0), legacyTapName("vm-1250812", 0));
  for (
    const n of ["uct", "uct1234", "uct02c10d12345", "uct02c10d12345ab", "ucb5a"]
  ) {
    assert.ok(!isTapName(n), n);
  }
});

Deno.test("nicTapName() names a NIC by its MAC, a bad MAC by the legacy name", () => {
  assert.equal(
    nicTapName("vm-1", { slot: 1, mac: "02:c1:0d:00:00:01" }),
    "uct02c10d000001",
  );
  assert.equal(
    nicTapName("vm-1", { slot: 1, mac: "nope" }),
    legacyTapName("vm-1", 1),
  );
});

Deno.test("fnv1a32() matches the reference vectors", () => {
  assert.equal(fnv1a32(""), 0x811c9dc5);
  assert.equal(fnv1a32("a"), 0xe40c292c);
  assert.equal(fnv1a32("foobar"), 0xbf9cf968);
});

Deno.test("nicChain() and checkDeviceName() accept only safe device names", () => {
  assert.equal(nicChain("uct1234abcd0"), "nic-uct1234abcd0");
  for (const bad of ["", "a".repeat(16), "-x", "a b", 'a"', "a/b", "a*"]) {
    assert.throws(() => checkDeviceName(bad), /Bad device name/, bad);
  }
  checkDeviceName("veth0.1_a-b");
});
