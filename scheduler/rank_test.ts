/**
 * Unit tests of rank.ts: a host's `score()` (free share after placing, disk
 * where tracked) and the spread/pack order `rank()` gives.
 */
import assert from "node:assert/strict";
import { cand, host } from "./_fixtures.ts";
import { rank, score } from "./rank.ts";

const one = { cpus: 1, memoryMiB: 128 };

Deno.test("score() is the share left free after placing, averaged over CPUs and memory", () => {
  assert.equal(score(cand("a", 8, 1024, 0, 0), { cpus: 0, memoryMiB: 0 }), 1);
  // CPUs 4 of 8 left (0.5), memory 768 of 1024 left (0.75).
  assert.equal(score(cand("a", 8, 1024, 3, 128), one), 0.625);
});

Deno.test("score() counts disk only on hosts that track it", () => {
  const tracked = { host: host("d", 4, 1024, "active", 1000), alloc: null };
  // CPUs 0.75, memory 0.875, disk 0.5.
  assert.equal(
    score(tracked, { ...one, diskMiB: 500 }),
    (0.75 + 0.875 + 0.5) / 3,
  );
  assert.equal(
    score(cand("s", 4, 1024), { ...one, diskMiB: 500 }),
    score(cand("s", 4, 1024), one),
  );
});

Deno.test("rank() puts the most room first for spread, the least for pack", () => {
  const cs = [
    cand("half", 8, 8192, 4, 4096),
    cand("empty", 8, 8192),
    cand("nearly", 8, 8192, 7, 7000),
  ];
  const names = (p: "spread" | "pack") =>
    rank(cs, one, p).map((r) => r.c.host.name);
  assert.deepEqual(names("spread"), ["empty", "half", "nearly"]);
  assert.deepEqual(names("pack"), ["nearly", "half", "empty"]);
  // Ranks are comparable: higher is better under both policies.
  const packed = rank(cs, one, "pack");
  assert.ok(packed[0].s > packed[1].s);
});
