import assert from "node:assert/strict";
import { AuthLimiter, SlidingWindow } from "./rate_limit.ts";

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

Deno.test("AuthLimiter limits per name and per address independently", () => {
  const c = clock();
  const l = new AuthLimiter({
    perName: { limit: 2, windowMs: 60_000 },
    perAddress: { limit: 3, windowMs: 60_000 },
    now: c.now,
  });
  l.fail({ name: "alice@ucloud", address: "2001:db8::1" });
  l.fail({ name: "alice@ucloud", address: "2001:db8::2" });
  // alice is blocked from any address; the addresses are not yet.
  assert.ok(
    l.retryAfterMs({ name: "alice@ucloud", address: "2001:db8::3" }) > 0,
  );
  assert.equal(
    l.retryAfterMs({ name: "bob@ucloud", address: "2001:db8::1" }),
    0,
  );
  l.fail({ name: "bob@ucloud", address: "2001:db8::1" });
  l.fail({ name: "carol@ucloud", address: "2001:db8::1" });
  // 2001:db8::1 has 3 failures: blocked for every name.
  assert.ok(
    l.retryAfterMs({ name: "dave@ucloud", address: "2001:db8::1" }) > 0,
  );
  assert.equal(
    l.retryAfterMs({ name: "dave@ucloud", address: "2001:db8::2" }),
    0,
  );
  // A success clears the name's failures, not the address's.
  l.succeed({ name: "bob@ucloud", address: "2001:db8::1" });
  assert.equal(l.byName.retryAfterMs("bob@ucloud"), 0);
  c.t += 60_000;
  assert.equal(
    l.retryAfterMs({ name: "alice@ucloud", address: "2001:db8::1" }),
    0,
  );
});

Deno.test("AuthLimiter does not limit by address when the address is unknown", () => {
  const l = new AuthLimiter({ perAddress: { limit: 1, windowMs: 60_000 } });
  l.fail({});
  l.fail({ name: "alice@ucloud" });
  assert.equal(l.byAddress.size, 0);
  assert.equal(l.retryAfterMs({ name: "bob@ucloud" }), 0);
});
