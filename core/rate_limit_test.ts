/**
 * Tests of core/rate_limit.ts: the sliding window, the back-off and the
 * AuthLimiter that combines them by name and by address.
 */
import assert from "node:assert/strict";
import { AuthLimiter, BackOff, SlidingWindow } from "./rate_limit.ts";

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

Deno.test("SlidingWindow blocks a key after `limit` failures until the oldest leaves the window", () => {
  const c = clock();
  const w = new SlidingWindow({ limit: 3, windowMs: 60_000, now: c.now });
  w.fail("a");
  c.t += 10_000;
  w.fail("a");
  assert.equal(w.retryAfterMs("a"), 0);
  c.t += 10_000;
  w.fail("a");
  assert.equal(w.retryAfterMs("a"), 40_000);
  assert.equal(w.retryAfterMs("b"), 0);
  c.t += 39_999;
  assert.equal(w.retryAfterMs("a"), 1);
  c.t += 1;
  // The first failure left the window: two remain, one more is allowed.
  assert.equal(w.retryAfterMs("a"), 0);
  w.fail("a");
  assert.equal(w.retryAfterMs("a"), 10_000);
});

Deno.test("SlidingWindow.clear() forgets a key and expired keys are dropped", () => {
  const c = clock();
  const w = new SlidingWindow({ limit: 1, windowMs: 1000, now: c.now });
  w.fail("a");
  assert.ok(w.retryAfterMs("a") > 0);
  w.clear("a");
  assert.equal(w.retryAfterMs("a"), 0);
  w.fail("b");
  c.t += 1000;
  assert.equal(w.retryAfterMs("b"), 0);
  assert.equal(w.size, 0);
});

Deno.test("SlidingWindow keeps at most maxKeys keys, dropping the least recently failed", () => {
  const c = clock();
  const w = new SlidingWindow({
    limit: 1,
    windowMs: 60_000,
    maxKeys: 2,
    now: c.now,
  });
  w.fail("a");
  w.fail("b");
  w.fail("a");
  w.fail("c");
  assert.equal(w.size, 2);
  assert.equal(w.retryAfterMs("b"), 0);
  assert.ok(w.retryAfterMs("a") > 0);
  assert.ok(w.retryAfterMs("c") > 0);
});

Deno.test("SlidingWindow refuses a limit below 1 and a window of 0", () => {
  assert.throws(() => new SlidingWindow({ limit: 0, windowMs: 1 }), RangeError);
  assert.throws(() => new SlidingWindow({ limit: 1, windowMs: 0 }), RangeError);
});

Deno.test("BackOff lets `limit` failures pass, then waits doubling up to the maximum, and the wait expires", () => {
  const c = clock();
  const b = new BackOff({
    limit: 3,
    windowMs: 60_000,
    backoffBaseMs: 1000,
    backoffMaxMs: 4000,
    now: c.now,
  });
  assert.equal(b.fail("a"), 0);
  assert.equal(b.fail("a"), 0);
  assert.equal(b.retryAfterMs("a"), 0);
  assert.equal(b.fail("a"), 1000);
  assert.equal(b.retryAfterMs("a"), 1000);
  c.t += 1000;
  // The wait has passed: the next attempt is checked again.
  assert.equal(b.retryAfterMs("a"), 0);
  assert.equal(b.fail("a"), 2000);
  c.t += 2000;
  assert.equal(b.fail("a"), 4000);
  c.t += 4000;
  assert.equal(b.fail("a"), 4000, "capped at backoffMaxMs");
  assert.equal(b.retryAfterMs("b"), 0);
  // Forgotten windowMs after the last failure and its wait.
  c.t += 4000 + 60_000;
  assert.equal(b.retryAfterMs("a"), 0);
  assert.equal(b.size, 0);
  assert.equal(b.fail("a"), 0);
});

Deno.test("BackOff.fail() with strict starts the wait at the first failure; clear() forgets", () => {
  const c = clock();
  const b = new BackOff({ limit: 5, windowMs: 60_000, now: c.now });
  assert.equal(b.fail("a", { strict: true }), 1000);
  assert.equal(b.fail("a", { strict: true }), 1000);
  // Not strict: the count goes on from 2 and the free ones remain.
  assert.equal(b.fail("a"), 0);
  assert.equal(b.fail("a"), 0);
  assert.equal(b.fail("a"), 1000);
  assert.equal(b.fail("a"), 2000);
  b.clear("a");
  assert.equal(b.retryAfterMs("a"), 0);
  assert.throws(
    () => new BackOff({ limit: 1, windowMs: 1, backoffMaxMs: 0 }),
    RangeError,
  );
});

Deno.test("AuthLimiter backs a name off after its failures, and a valid try after the wait succeeds", () => {
  const c = clock();
  const l = new AuthLimiter({
    perName: { limit: 2, windowMs: 60_000, backoffBaseMs: 5000 },
    now: c.now,
  });
  l.fail({ name: "alice@ucloud", address: "2001:db8::1" });
  assert.equal(l.retryAfterMs({ name: "alice@ucloud" }), 0);
  l.fail({ name: "alice@ucloud", address: "2001:db8:1::2" });
  // alice waits from any address; others do not.
  assert.equal(
    l.retryAfterMs({ name: "alice@ucloud", address: "2001:db8:2::3" }),
    5000,
  );
  assert.equal(l.retryAfterMs({ name: "bob@ucloud" }), 0);
  c.t += 5000;
  assert.equal(l.retryAfterMs({ name: "alice@ucloud" }), 0);
  l.succeed({ name: "alice@ucloud" });
  l.fail({ name: "alice@ucloud" });
  assert.equal(l.retryAfterMs({ name: "alice@ucloud" }), 0, "cleared");
});

Deno.test("AuthLimiter never refuses by address: a noisy address only loses the free failures", () => {
  const c = clock();
  const l = new AuthLimiter({
    perName: { limit: 5, windowMs: 60_000 },
    perAddress: { limit: 3, windowMs: 60_000 },
    now: c.now,
  });
  for (let i = 0; i < 3; i++) l.fail({ address: "192.0.2.7" });
  assert.equal(l.noisy("192.0.2.7"), true);
  assert.equal(l.noisy("192.0.2.8"), false);
  assert.equal(l.retryAfterMs({ name: "bob@ucloud", address: "192.0.2.7" }), 0);
  // From the noisy address, the first failure of a name already waits.
  l.fail({ name: "bob@ucloud", address: "192.0.2.7" });
  assert.ok(l.retryAfterMs({ name: "bob@ucloud" }) > 0);
  // From a quiet address, carol has her free failures.
  l.fail({ name: "carol@ucloud", address: "192.0.2.8" });
  assert.equal(l.retryAfterMs({ name: "carol@ucloud" }), 0);
  c.t += 60_000;
  assert.equal(l.noisy("192.0.2.7"), false);
});

Deno.test("AuthLimiter counts two addresses of one IPv6 /64 in one bucket, IPv4 per address", () => {
  const l = new AuthLimiter({ perAddress: { limit: 2, windowMs: 60_000 } });
  l.fail({ address: "2001:db8:5:6::1" });
  l.fail({ address: "2001:db8:5:6:ffff::2" });
  assert.equal(l.noisy("2001:db8:5:6::99"), true);
  assert.equal(l.noisy("2001:db8:5:7::1"), false);
  l.fail({ address: "198.51.100.1" });
  l.fail({ address: "198.51.100.2" });
  assert.equal(l.noisy("198.51.100.1"), false);
  assert.equal(l.noisy("198.51.100.3"), false);
});

Deno.test("AuthLimiter does not count by address when the address is unknown", () => {
  const l = new AuthLimiter({ perAddress: { limit: 1, windowMs: 60_000 } });
  l.fail({});
  l.fail({ name: "alice@ucloud" });
  assert.equal(l.byAddress.size, 0);
  assert.equal(l.retryAfterMs({ name: "bob@ucloud" }), 0);
});
