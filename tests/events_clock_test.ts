/**
 * The time limits of `/v1/events` (api/events.ts) run on a monotonic
 * clock (DESIGN.md rule 8): a wall clock that steps (NTP, `date -s`)
 * neither ends a stream opened with TOTP early nor keeps it open longer.
 */
import assert from "node:assert/strict";
import { lifetimeCheck } from "../api/events.ts";
import { waitFor } from "./helpers/cluster.ts";

Deno.test("a TOTP stream's lifetime ignores a step of the wall clock", async () => {
  const wall = Date.now;
  try {
    const check = lifetimeCheck(300);
    Date.now = () => wall() + 3_600_000;
    assert.equal(await check(), null, "an hour's step forward ends nothing");
    Date.now = () => wall() - 3_600_000;
    await waitFor(
      "the lifetime ran out",
      async () => (await check()) === "expired",
      10_000,
      20,
    );
  } finally {
    Date.now = wall;
  }
});
