/**
 * Tests of onCrash() (workers/restart_policy.ts): restart back-off, giving up
 * after too many crashes in a window, and its bounded history.
 */
import assert from "node:assert/strict";
import { onCrash } from "./restart_policy.ts";

const policy = {
  max: 3,
  windowSeconds: 60,
  backoffBaseMs: 1000,
  backoffMaxMs: 3000,
};
const t0 = Date.parse("2026-12-01T10:00:00Z");
const at = (s: number) => new Date(t0 + s * 1000);

Deno.test("onCrash() restarts with a doubling backoff, capped", () => {
  const delays: number[] = [];
  let crashes = undefined;
  for (let i = 0; i < 3; i++) {
    const d = onCrash(crashes, `crash ${i}`, at(i), policy);
    assert.ok("delayMs" in d);
    assert.equal(d.count, i + 1);
    delays.push(d.delayMs);
    crashes = d.crashes;
  }
  assert.deepEqual(delays, [1000, 2000, 3000]);
});

Deno.test("onCrash() gives up with phase error after max restarts within the window", () => {
  let crashes = undefined;
  for (let i = 0; i < 3; i++) {
    crashes = onCrash(crashes, "boom", at(i), policy).crashes;
  }
  const d = onCrash(crashes, "boom again", at(4), policy);
  assert.ok("error" in d);
  assert.match(d.error, /crashed 4 times within 60 s \(restart\.max 3\)/);
  assert.match(d.error, /Last: boom again/);
});

Deno.test("onCrash() forgets crashes older than the window; the list stays bounded", () => {
  let crashes = undefined;
  for (let i = 0; i < 3; i++) {
    crashes = onCrash(crashes, "old", at(i), policy).crashes;
  }
  const d = onCrash(crashes, "new", at(200), policy);
  assert.ok("delayMs" in d);
  assert.equal(d.count, 1);
  assert.deepEqual(d.crashes.map((c) => c.reason), ["new"]);
  // However many crashes, at most max + 1 are kept.
  let many = undefined;
  for (let i = 0; i < 50; i++) many = onCrash(many, "x", at(i), policy).crashes;
  assert.equal(many!.length, 4);
});

Deno.test("onCrash() with max 0 never restarts", () => {
  const d = onCrash(undefined, "boom", at(0), { ...policy, max: 0 });
  assert.ok("error" in d);
});
