/**
 * Tests of monotonicMs() (core/clock.ts): CLOCK_BOOTTIME in milliseconds, the
 * same across processes, never going back.
 */
import assert from "node:assert/strict";
import { monotonicMs } from "./clock.ts";

Deno.test("monotonicMs() is CLOCK_BOOTTIME in ms, the same in another process", async () => {
  const before = monotonicMs();
  const out = await new Deno.Command("cat", { args: ["/proc/uptime"] })
    .output();
  const after = monotonicMs();
  const other = Number(new TextDecoder().decode(out.stdout).split(" ")[0]) *
    1000;
  assert.ok(before - 10 <= other && other <= after + 10, `${other}`);
  // Milliseconds since boot, nowhere near the epoch.
  assert.ok(after < Date.now() / 100, `${after}`);
});

Deno.test("monotonicMs() never goes back and costs microseconds", () => {
  let last = monotonicMs();
  const t = performance.now();
  for (let i = 0; i < 2000; i++) {
    const now = monotonicMs();
    assert.ok(now >= last);
    last = now;
  }
  const perCall = (performance.now() - t) / 2000;
  assert.ok(perCall < 1, `${perCall} ms per call`);
});
