/**
 * Unit tests of select.ts: which host `choose()` gives a VM (spread or pack,
 * near-ties at random, busy hosts last, disk, public bridges) or why none.
 */
import assert from "node:assert/strict";
import type { Candidate } from "./resources.ts";
import { cand, host, seeded } from "./_fixtures.ts";
import { NEAR_TIE, score } from "./rank.ts";
import { reserve, sizeOf } from "./resources.ts";
import { fits } from "./feasible.ts";
import { choose } from "./select.ts";

const one = { cpus: 1, memoryMiB: 128 };

Deno.test("choose() considers only live, active hosts with room", () => {
  const cs = [
    cand("full", 2, 512, 2, 128),
    { ...cand("dead", 64, 65536), alive: false },
    { ...cand("drain", 64, 65536), host: host("drain", 64, 65536, "draining") },
    cand("ok", 4, 1024),
  ];
  for (const policy of ["spread", "pack"] as const) {
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(choose(cs, one, policy), { host: "ok" });
    }
  }
});

Deno.test("spread picks the host with the most room, pack the least that fits", () => {
  const cs = [
    cand("a", 8, 8192, 6, 6144), // 25 % free
    cand("b", 8, 8192, 0, 0), // empty
    cand("c", 8, 8192, 7, 7000), // nearly full, still fits one
    cand("d", 8, 8192, 4, 4096), // half
  ];
  for (let seed = 1; seed < 50; seed++) {
    assert.deepEqual(choose(cs, one, "spread", seeded(seed)), { host: "b" });
    assert.deepEqual(choose(cs, one, "pack", seeded(seed)), { host: "c" });
  }
  // Normalized: memory counts as much as CPUs.
  const mixed = [
    cand("cpu-free", 8, 8192, 0, 7168), // CPUs free, memory nearly gone
    cand("balanced", 8, 8192, 3, 3072),
  ];
  assert.deepEqual(choose(mixed, one, "spread"), { host: "balanced" });
});

Deno.test("near-ties are broken at random, so placers spread out", () => {
  const cs = Array.from({ length: 10 }, (_, i) => cand(`h${i}`, 64, 65536));
  const seen = new Set<string>();
  const rand = seeded(7);
  for (let i = 0; i < 200; i++) {
    const r = choose(cs, one, "spread", rand);
    assert.ok("host" in r);
    seen.add(r.host);
  }
  assert.ok(seen.size >= 8, `only ${[...seen]} picked`);
  // Within the tie window; outside it the best host always wins.
  const near = [cand("x", 100, 100_000), cand("y", 100, 100_000, 2, 2000)];
  assert.ok(score(near[0], one) - score(near[1], one) <= NEAR_TIE);
  const picks = new Set(
    Array.from({ length: 50 }, () => {
      const r = choose(near, one, "pack");
      return "host" in r ? r.host : r.reason;
    }),
  );
  assert.deepEqual([...picks].sort(), ["x", "y"]);
});

Deno.test("hosts busy in this process are used only when nothing else fits", () => {
  const cs = [
    cand("busy", 64, 65536, 0, 0, { busy: true }),
    cand("idle", 64, 65536, 60, 60000),
  ];
  for (let i = 0; i < 20; i++) {
    assert.deepEqual(choose(cs, one, "spread"), { host: "idle" });
  }
  const full = [cs[0], cand("idle", 64, 65536, 64, 60000)];
  assert.deepEqual(choose(full, one, "spread"), { host: "busy" });
});

Deno.test("choose() explains when nothing fits", () => {
  assert.deepEqual(choose([], one), { reason: "no live host is registered" });
  assert.deepEqual(
    choose([{ ...cand("a", 4, 4096), alive: false }], one),
    {
      reason:
        "no live host is registered (1 registered: 1 not alive, 0 draining)",
    },
  );
  const r = choose([
    cand("a", 4, 4096, 3, 2048),
    cand("b", 4, 4096, 4, 4096),
    cand("c", 2, 8192, 1, 6144),
    { ...cand("d", 64, 65536), alive: false },
  ], { cpus: 2, memoryMiB: 4096 });
  assert.deepEqual(r, {
    reason: "no live host has 2 free CPU(s) and 4096 MiB free memory " +
      "(3 host(s) checked, 1 down or draining; largest free: 1 CPU(s), " +
      "2048 MiB on a)",
  });
});

Deno.test("choose() places by disk: fits, does not fit, untracked ignores it", () => {
  const withDisk = (
    name: string,
    diskMiB: number,
    usedDisk = 0,
  ): Candidate => ({
    host: host(name, 8, 8192, "active", diskMiB),
    alive: true,
    alloc: usedDisk
      ? reserve(null, { cpus: 1, memoryMiB: 128, diskMiB: usedDisk })
      : null,
  });
  const need = { cpus: 1, memoryMiB: 128, diskMiB: 30 * 1024 };
  // Fits: only the host with enough free disk is picked, whatever the policy.
  for (const policy of ["spread", "pack"] as const) {
    assert.deepEqual(
      choose(
        [withDisk("small", 20 * 1024), withDisk("big", 100 * 1024)],
        need,
        policy,
      ),
      { host: "big" },
    );
  }
  // Reserved disk counts: 100 GiB with 80 used has 20 left.
  assert.equal(fits(withDisk("used", 100 * 1024, 80 * 1024), need), false);
  assert.equal(fits(withDisk("exact", 30 * 1024), need), true);
  // Does not fit anywhere: the reason names disk as the constraint.
  const r = choose([withDisk("a", 10 * 1024), withDisk("b", 20 * 1024)], need);
  assert.ok("reason" in r);
  assert.equal(
    r.reason,
    "no live host has 1 free CPU(s) and 128 MiB free memory and 30720 MiB " +
      "free disk (2 host(s) checked; largest free: 8 CPU(s), 8192 MiB, " +
      "20480 MiB disk on b; short of disk on 2 host(s))",
  );
  // A host without diskMiB (shared store) ignores disk entirely.
  assert.deepEqual(
    choose([withDisk("a", 10 * 1024), cand("shared", 2, 1024)], need),
    {
      host: "shared",
    },
  );
  assert.equal(
    score(cand("shared", 2, 1024), need),
    score(cand("shared", 2, 1024), one),
  );
  // CPU short, disk fine: the reason does not blame disk.
  const cpu = choose([withDisk("a", 100 * 1024)], { ...need, cpus: 16 });
  assert.ok("reason" in cpu);
  assert.doesNotMatch(cpu.reason, /short of disk/);
});

Deno.test("a VM with a NIC in a public network fits only hosts with that bridge", () => {
  const need = { cpus: 1, memoryMiB: 128, bridges: ["pub0"] };
  const host = (name: string, publicBridges?: string[]): Candidate => ({
    host: {
      name,
      capacity: { cpus: 4, memoryMiB: 4096 },
      addresses: [],
      os: "linux",
      drivers: ["qemu"],
      state: "active",
      registeredAt: "2026-01-01T00:00:00Z",
      ...(publicBridges ? { publicBridges } : {}),
    },
    alive: true,
    alloc: null,
  });
  assert.deepEqual(
    choose([host("a"), host("b", ["pub0"]), host("c", ["pub1"])], need),
    { host: "b" },
  );
  const r = choose([host("a"), host("c", ["pub1"])], need);
  assert.ok("reason" in r && r.reason.includes("public bridge(s) pub0"));
  // The bridge is not a size: the reservation holds CPUs and memory only.
  assert.deepEqual(sizeOf(need), {
    cpus: 1,
    memoryMiB: 128,
  });
});
