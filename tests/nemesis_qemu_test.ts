/**
 * The nemesis (tests/helpers/nemesis/run.ts) with the qemu driver in CI:
 * real qemu under TCG booting the tiny test guest on three namespace
 * hosts, a slow workload of at most 6 VMs (1 CPU, 128 MiB;
 * tests/helpers/nemesis/profile.ts) and 75 s of seeded faults must end with
 * zero double runs, lost, leaked and stuck. CI replays seed 1;
 * `UCLOUD_NEMESIS_SEED=S` picks another, `random` a fresh one (printed).
 * `deno task nemesis --driver qemu --minutes N` runs longer.
 */
import assert from "node:assert/strict";
import { randomSeed } from "./helpers/nemesis/rng.ts";
import { runNemesis } from "./helpers/nemesis/run.ts";

function seed(): number {
  const given = Deno.env.get("UCLOUD_NEMESIS_SEED") ?? "1";
  return given === "random" ? randomSeed() : Number(given);
}

Deno.test({
  name:
    "nemesis with qemu: 75 s of faults end with zero double runs, lost, leaked and stuck",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const r = await runNemesis({
      durationMs: 75_000,
      seed: seed(),
      driver: "qemu",
    });
    assert.ok(r.faults > 5, `only ${r.faults} faults injected`);
    assert.deepEqual(
      r.counts,
      { doubleRuns: 0, lost: 0, leaked: 0, stuck: 0 },
      `${r.verdict} (seed ${r.seed}; details above)`,
    );
  },
});
