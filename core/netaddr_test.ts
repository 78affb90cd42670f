/**
 * Tests of core/netaddr.ts: IPv6 and IPv4 address and prefix parsing, /64
 * hand-out, SLAAC addresses of a MAC, MACs, VNIs and their multicast groups.
 */
import assert from "node:assert/strict";
import {
  canonicalPrefix6,
  checkVni,
  eui64,
  formatIpv4,
  formatIpv6,
  inPrefix6,
  interfaceId,
  linkLocal,
  multicastGroup,
  normalizeMac,
  nthIpv4,
  nthPrefix,
  parseIpv4,
  parseIpv6,
  parsePrefix4,
  parsePrefix6,
  prefixCount,
  randomMac,
} from "./netaddr.ts";

Deno.test("parseIpv6() and formatIpv6() round-trip to RFC 5952 text", () => {
  const cases: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["FDC1:0D00:0000:0005:0000:0000:0000:0001", "fdc1:d00:0:5::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first longest run
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
    ["fe80::", "fe80::"],
    ["::ffff:127.0.0.1", "::ffff:7f00:1"],
    ["::ffff:192.0.2.1", "::ffff:c000:201"],
  ];
  for (const [input, text] of cases) {
    assert.equal(formatIpv6(parseIpv6(input)), text, input);
  }
  assert.equal(parseIpv6("::1"), 1n);
  for (const bad of ["", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "g::", "1:2"]) {
    assert.throws(() => parseIpv6(bad), TypeError, bad);
  }
});

Deno.test("parsePrefix6() refuses host bits and suggests the network", () => {
  assert.deepEqual(parsePrefix6("fd00::/8"), {
    network: 0xfdn << 120n,
    length: 8,
  });
  assert.throws(
    () => parsePrefix6("fdc1:d00:0:5::1/64"),
    /did you mean fdc1:d00:0:5::\/64\?/,
  );
  assert.throws(() => parsePrefix6("fd00::/129"), TypeError);
  assert.throws(() => parsePrefix6("fd00::"), TypeError);
  assert.equal(canonicalPrefix6("FDC1:0D00:0:5:0::/64"), "fdc1:d00:0:5::/64");
});

Deno.test("nthPrefix() and prefixCount() hand out /64s of a pool", () => {
  assert.equal(nthPrefix("fdc1:d00::/48", 0), "fdc1:d00::/64");
  assert.equal(nthPrefix("fdc1:d00::/48", 5), "fdc1:d00:0:5::/64");
  assert.equal(nthPrefix("fdc1:d00::/48", 65535), "fdc1:d00:0:ffff::/64");
  assert.equal(prefixCount("fdc1:d00::/48"), 65536);
  assert.equal(prefixCount("fd00::/8"), 2 ** 32);
  assert.equal(prefixCount("fdc1:d00:0:5::/64"), 1);
  assert.throws(() => nthPrefix("fdc1:d00::/48", 65536), RangeError);
  assert.throws(() => nthPrefix("fdc1:d00::/48", -1), RangeError);
  assert.throws(() => nthPrefix("fdc1:d00:0:5::/80", 0), /smaller than a \/64/);
});

Deno.test("inPrefix6() tests membership by the prefix length", () => {
  assert.ok(inPrefix6("fdc1:d00:0:5::1", "fdc1:d00:0:5::/64"));
  assert.ok(!inPrefix6("fdc1:d00:0:6::1", "fdc1:d00:0:5::/64"));
  assert.ok(inPrefix6("fe80::1", "fe80::/10"));
  assert.ok(inPrefix6("febf::1", "fe80::/10"));
  assert.ok(!inPrefix6("fec0::1", "fe80::/10"));
  assert.ok(inPrefix6("2001:db8::1", "::/0"));
});

Deno.test("eui64() and linkLocal() are the SLAAC addresses of a MAC (RFC 4291)", () => {
  assert.equal(interfaceId("02:c1:0d:12:34:56"), 0x00c10dfffe123456n);
  assert.equal(
    eui64("fdc1:d00:0:5::/64", "02:C1:0D:12:34:56"),
    "fdc1:d00:0:5:c1:dff:fe12:3456",
  );
  // The universal/local bit flips: a global MAC gets bit 0x02 set.
  assert.equal(
    eui64("2001:db8::/64", "00:11:22:33:44:55"),
    "2001:db8::211:22ff:fe33:4455",
  );
  assert.equal(linkLocal("02:c1:0d:00:00:01"), "fe80::c1:dff:fe00:1");
  assert.throws(
    () => eui64("fdc1:d00::/48", "02:c1:0d:00:00:01"),
    /needs a \/64/,
  );
  assert.throws(() => eui64("fdc1:d00::/64", "02:c1:0d:00:00"), /Not a MAC/);
});

Deno.test("normalizeMac() and randomMac() give lower-case ucloud MACs", () => {
  assert.equal(normalizeMac("02-C1-0D-AA-BB-CC"), "02:c1:0d:aa:bb:cc");
  assert.throws(() => normalizeMac("02:c1:0d:aa:bb"), TypeError);
  assert.throws(() => normalizeMac("02:c1:0d:aa:bb:cg"), TypeError);
  assert.equal(
    randomMac(() => new Uint8Array([0xab, 0x01, 0xff])),
    "02:c1:0d:ab:01:ff",
  );
  const m = randomMac();
  assert.match(m, /^02:c1:0d(:[0-9a-f]{2}){3}$/);
  // Locally administered (bit 0x02) and unicast (bit 0x01 clear).
  const first = parseInt(m.slice(0, 2), 16);
  assert.equal(first & 0x03, 0x02);
});

Deno.test("multicastGroup() and checkVni(): ff05::<vni>, VNIs 1 to 2^24-1", () => {
  assert.equal(multicastGroup(1), "ff05::1");
  assert.equal(multicastGroup(0xabcdef), "ff05::ab:cdef");
  for (const bad of [0, 0x1000000, 1.5, -1]) {
    assert.throws(() => checkVni(bad), RangeError, String(bad));
  }
  checkVni(0xffffff);
});

Deno.test("IPv4 subnets: parsePrefix4(), nthIpv4() skip network, gateway and broadcast", () => {
  assert.equal(parseIpv4("198.51.100.7"), 0xc6336407);
  assert.equal(formatIpv4(0xc6336407), "198.51.100.7");
  assert.throws(() => parseIpv4("198.51.100.256"), TypeError);
  assert.throws(() => parseIpv4("198.51.100"), TypeError);
  assert.deepEqual(parsePrefix4("198.51.100.0/24"), {
    network: 0xc6336400,
    length: 24,
  });
  assert.throws(() => parsePrefix4("198.51.100.1/24"), /host bits/);
  assert.throws(() => parsePrefix4("198.51.100.0/31"), /\/8 to \/30/);
  assert.equal(nthIpv4("198.51.100.0/24", 0), "198.51.100.2");
  assert.equal(nthIpv4("198.51.100.0/24", 252), "198.51.100.254");
  assert.equal(nthIpv4("198.51.100.0/24", 253), null); // the broadcast
  assert.equal(nthIpv4("203.0.113.0/30", 0), "203.0.113.2");
  assert.equal(nthIpv4("203.0.113.0/30", 1), null); // .3 is the broadcast
  assert.equal(nthIpv4("198.51.100.0/24", -1), null);
});
