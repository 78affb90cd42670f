/**
 * Tests of core/client_address.ts: the client's address behind trusted proxies
 * (X-Forwarded-For), the trusted proxy list and the rate-limit bucket of an
 * address.
 */
import assert from "node:assert/strict";
import {
  addressBucket,
  clientAddress,
  parseTrustedProxies,
} from "./client_address.ts";

const trusted = parseTrustedProxies([
  "10.0.0.0/8",
  "2001:db8:1::/64",
  "192.0.2.1",
]);

Deno.test("clientAddress() ignores X-Forwarded-For from a peer that is not a trusted proxy", () => {
  assert.equal(
    clientAddress("198.51.100.4", "203.0.113.9", trusted),
    "198.51.100.4",
  );
  assert.equal(clientAddress("2001:db8:2::1", "10.1.1.1", []), "2001:db8:2::1");
  assert.equal(clientAddress(undefined, "10.1.1.1", trusted), undefined);
});

Deno.test("clientAddress() takes the rightmost untrusted hop behind trusted proxies", () => {
  // The client wrote 203.0.113.66 itself: only what proxies append counts.
  assert.equal(
    clientAddress(
      "10.0.0.5",
      "203.0.113.66, 2001:db8:9::5, 192.0.2.1",
      trusted,
    ),
    "2001:db8:9::5",
  );
  assert.equal(
    clientAddress("::ffff:10.0.0.5", "198.51.100.7:5123", trusted),
    "198.51.100.7",
  );
  assert.equal(
    clientAddress("2001:db8:1::7", "[2001:DB8:9::5]:443", trusted),
    "2001:db8:9::5",
  );
  // No header: the proxy itself; every hop trusted: the leftmost.
  assert.equal(clientAddress("10.0.0.5", undefined, trusted), "10.0.0.5");
  assert.equal(
    clientAddress("10.0.0.5", "10.9.9.9, 192.0.2.1", trusted),
    "10.9.9.9",
  );
  // Garbage stops the walk at the proxy that passed it on.
  assert.equal(
    clientAddress("10.0.0.5", "198.51.100.1, unknown, 192.0.2.1", trusted),
    "192.0.2.1",
  );
});

Deno.test("parseTrustedProxies() refuses what is no address or CIDR", () => {
  for (
    const bad of ["10.0.0.0/33", "2001:db8::/129", "proxy", "10.0.0.1/8/1"]
  ) {
    assert.throws(() => parseTrustedProxies([bad]), TypeError, bad);
  }
  assert.equal(parseTrustedProxies(["::/0", "0.0.0.0/0"]).length, 2);
});

Deno.test("addressBucket() is the /64 of an IPv6 address and an IPv4 address itself", () => {
  assert.equal(addressBucket("2001:db8:5:6:a:b:c:d"), "2001:db8:5:6::/64");
  assert.equal(addressBucket("2001:db8:5:6::1"), "2001:db8:5:6::/64");
  assert.equal(addressBucket("::ffff:192.0.2.4"), "192.0.2.4");
  assert.equal(addressBucket("192.0.2.4"), "192.0.2.4");
  assert.equal(addressBucket("not-an-address"), "not-an-address");
});
