/**
 * Unit tests of schedule.ts and rng.ts: `planFaults()` draws reproducible,
 * bounded fault plans, and `Rng.fork()` streams depend on seed and label only.
 */
import assert from "node:assert/strict";
import { Rng } from "./rng.ts";
import { HOST_FAULTS, planFaults, type ScheduleOptions } from "./schedule.ts";

const opts: ScheduleOptions = {
  durationMs: 20 * 60_000,
  hosts: ["h1", "h2", "h3"],
  ttlMs: 2000,
};

Deno.test("planFaults() draws the same plan from the same seed, another from another", () => {
  const a = planFaults(new Rng(42).fork("faults"), opts);
  const b = planFaults(new Rng(42).fork("faults"), opts);
  const c = planFaults(new Rng(43).fork("faults"), opts);
  assert.ok(a.length > 100);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

Deno.test("planFaults() keeps one fault per target and at most hosts - 1 faulty hosts", () => {
  for (let seed = 0; seed < 20; seed++) {
    const plan = planFaults(new Rng(seed), opts);
    const kinds = new Set(plan.map((f) => f.kind));
    assert.equal(kinds.size, 6, `seed ${seed}: every kind drawn`);
    plan.forEach((f, i) => {
      const before = plan.slice(0, i);
      const busy = (g: typeof f) => g.at + g.durationMs + opts.ttlMs > f.at;
      assert.ok(
        !before.some((g) => g.target === f.target && busy(g)),
        `seed ${seed}: ${f.target} has two faults at ${f.at}`,
      );
      const faulty = new Set(
        before.filter((g) => HOST_FAULTS.has(g.kind) && busy(g)).map((g) =>
          g.target
        ),
      );
      if (HOST_FAULTS.has(f.kind)) faulty.add(f.target);
      assert.ok(faulty.size <= 2, `seed ${seed}: 3 hosts faulty at ${f.at}`);
      assert.ok(f.at < opts.durationMs);
    });
  }
});

Deno.test("planFaults() draws only the kinds it is given, with their durations", () => {
  const plan = planFaults(new Rng(1), { ...opts, kinds: ["stop-worker"] });
  assert.ok(plan.length > 0);
  for (const f of plan) {
    assert.equal(f.kind, "stop-worker");
    assert.ok(f.durationMs >= 600 && f.durationMs <= 6000, `${f.durationMs}`);
  }
  assert.deepEqual(planFaults(new Rng(1), { ...opts, kinds: [] }), []);
});

Deno.test("Rng.fork() gives streams that depend on the seed and the label only", () => {
  const a = new Rng(7);
  a.next();
  assert.equal(a.fork("x").next(), new Rng(7).fork("x").next());
  assert.notEqual(new Rng(7).fork("x").next(), new Rng(7).fork("y").next());
  const r = new Rng(9);
  for (let i = 0; i < 1000; i++) {
    const n = r.int(1, 3);
    assert.ok(n >= 1 && n <= 3 && Number.isInteger(n));
  }
});
