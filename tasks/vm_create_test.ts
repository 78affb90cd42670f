/**
 * Unit tests of vm_create.ts's back-off for a VM that fits nowhere.
 */
import assert from "node:assert/strict";
import { capacityWait, FIRST_WAIT_MS } from "./vm_create.ts";

Deno.test("capacityWait() doubles from 0.25 s up to the configured maximum, jittered down by at most a quarter", () => {
  const top = () => 0.999999;
  const bottom = () => 0;
  const max = 60_000;
  const waits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 50, 5000];
  assert.deepEqual(waits.map((w) => capacityWait(w, max, top)), [
    250,
    500,
    1000,
    2000,
    4000,
    8000,
    16_000,
    32_000,
    60_000,
    60_000,
    60_000,
    60_000,
  ]);
  assert.equal(capacityWait(0, max, bottom), Math.round(FIRST_WAIT_MS * 0.75));
  assert.equal(capacityWait(20, max, bottom), 45_000);
  // A short maximum caps early.
  assert.equal(capacityWait(4, 2000, top), 2000);
});
