/** Tests of core/url_policy.ts: which addresses and URLs an image fetch refuses. */
import assert from "node:assert/strict";
import { blockedAddress, literalHost, refusedUrl } from "./url_policy.ts";

Deno.test("blockedAddress() names every refused kind of address", () => {
  const cases: [string, string | null][] = [
    ["127.0.0.1", "loopback"],
    ["127.255.1.2", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.1", null],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "CGNAT"],
    ["169.254.169.254", "metadata"],
    ["169.254.1.1", "link-local"],
    ["0.0.0.0", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["255.255.255.255", "reserved"],
    ["8.8.8.8", null],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["fe80::1", "link-local"],
    ["fd00:ec2::254", "metadata"],
    ["fd12:3456::1", "private"],
    ["fc00::1", "private"],
    ["ff02::1", "multicast"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:169.254.169.254", "metadata"],
    ["64:ff9b::10.0.0.1", "private"],
    ["::127.0.0.1", "reserved"],
    ["2a00:1450:4001:82a::200e", null],
    ["2001:db8::1", "reserved"],
  ];
  for (const [a, want] of cases) assert.equal(blockedAddress(a), want, a);
});

Deno.test("refusedUrl() refuses literals in every spelling, not host names", () => {
  for (
    const u of [
      "http://127.0.0.1/x",
      "http://2130706433/x",
      "http://0x7f.1/x",
      "http://[::1]:8080/x",
      "http://[::ffff:127.0.0.1]/",
      "http://169.254.169.254/latest/meta-data",
      "http://[fd00:ec2::254]/",
      "https://10.0.0.1/",
      "ftp://example.com/x",
      "http://user:pw@example.com/x",
    ]
  ) assert.ok(refusedUrl(new URL(u)), u);
  assert.equal(refusedUrl(new URL("https://example.com/a.qcow2")), null);
  assert.equal(literalHost(new URL("http://localhost/")), null);
  assert.equal(literalHost(new URL("http://[::1]/")), "::1");
});
