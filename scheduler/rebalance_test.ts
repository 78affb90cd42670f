/**
 * Unit tests of rebalance.ts: a host's `load()` and the moves
 * `planRebalance()` plans (threshold, maxMoves, which VMs and hosts qualify).
 */
import assert from "node:assert/strict";
import type { Alloc, Host, Vm } from "../core/schemas.ts";
import { host, vm } from "./_fixtures.ts";
import { load, mayMove, planRebalance } from "./rebalance.ts";
import { type Candidate, reserve } from "./resources.ts";

/** Candidates and their allocs from the VMs placed on them. */
function cluster(
  hosts: (Host & { alive?: boolean })[],
  vms: Vm[],
): Candidate[] {
  return hosts.map((h) => {
    let alloc: Alloc | null = null;
    for (const v of vms.filter((v) => v.status.host === h.name)) {
      alloc = reserve(alloc, { cpus: v.spec.cpus, memoryMiB: v.spec.memory });
    }
    return { host: h, alive: h.alive ?? true, alloc };
  });
}

/** Balancing tests let running VMs move (the admin's choice). */
const opts = { threshold: 0.25, maxMoves: 2, running: true };

Deno.test("load() is the used share of capacity over CPUs and memory", () => {
  assert.equal(load({ host: host("h1", 4, 1000), alloc: null }), 0);
  const alloc = reserve(null, { cpus: 2, memoryMiB: 250 });
  assert.equal(load({ host: host("h1", 4, 1000), alloc }), (0.5 + 0.25) / 2);
  // Local disk limits where VMs go but is not part of the load.
  const disk = host("h1", 4, 1000);
  disk.capacity.diskMiB = 10_000;
  assert.equal(load({ host: disk, alloc }), (0.5 + 0.25) / 2);
  const withDisk = reserve(null, { cpus: 2, memoryMiB: 250, diskMiB: 9000 });
  assert.equal(load({ host: disk, alloc: withDisk }), (0.5 + 0.25) / 2);
});

Deno.test("load() is the used share of what the host offers, with its allocation ratios and reserve", () => {
  const h = {
    ...host("h1", 2, 1512),
    allocation: { cpuRatio: 4, memoryRatio: 1, reservedMemoryMiB: 512 },
  };
  // 8 cores and 1000 MiB offered: 2 cores are a quarter, 250 MiB too.
  const alloc = reserve(null, { cpus: 2, memoryMiB: 250 });
  assert.equal(load({ host: h, alloc }), 0.25);
  // Two 1-CPU VMs fill a 2-core host without ratios, not one with 4.
  const vms = ["a", "b"].map((id) => vm(id, "h1"));
  const plan = planRebalance(
    cluster([{ ...h, capacity: { cpus: 2, memoryMiB: 4096 } }, {
      ...host("h2", 8, 4096),
    }], vms),
    vms,
    opts,
  );
  assert.deepEqual(plan.moves, []);
  assert.match(plan.reason, /^balanced: h1 16%, h2 0%/);
});

Deno.test("planRebalance() moves from the most to the least loaded host until within the threshold", () => {
  const vms = ["a", "b", "c", "d"].map((id) => vm(id, "h1"));
  const plan = planRebalance(
    cluster([host("h1"), host("h2")], vms),
    vms,
    opts,
  );
  assert.deepEqual(plan.moves.map((m) => [m.vm, m.from, m.to]), [
    ["a", "h1", "h2"],
    ["b", "h1", "h2"],
  ]);
  assert.match(plan.moves[0].why, /^h1 63%, h2 0% loaded, gap above 25%$/);
  assert.equal(plan.moves[0].phase, "running");
  assert.match(plan.reason, /^balanced: h1 31%, h2 31% \(gap 0% within 25%\)$/);
});

Deno.test("planRebalance() stops at maxMoves and says so", () => {
  const vms = ["a", "b", "c", "d"].map((id) => vm(id, "h1"));
  const plan = planRebalance(cluster([host("h1"), host("h2")], vms), vms, {
    threshold: 0.25,
    maxMoves: 1,
    running: true,
  });
  assert.deepEqual(plan.moves.map((m) => m.vm), ["a"]);
  assert.match(plan.reason, /^at most 1 move\(s\) per round: h1 47%, h2 16%$/);
  const none = planRebalance(cluster([host("h1"), host("h2")], vms), vms, {
    threshold: 0.25,
    maxMoves: 0,
    running: true,
  });
  assert.deepEqual(none.moves, []);
});

Deno.test("planRebalance() does nothing within the threshold", () => {
  // h1 2/4 CPUs, h2 empty: loads 31% and 0% (memory counts too).
  const vms = [vm("a", "h1"), vm("b", "h1")];
  const plan = planRebalance(cluster([host("h1"), host("h2")], vms), vms, {
    threshold: 0.4,
    maxMoves: 2,
    running: true,
  });
  assert.deepEqual(plan.moves, []);
  assert.match(plan.reason, /^balanced: h1 31%, h2 0% \(gap 31% within 40%\)$/);
});

Deno.test("planRebalance() never overshoots: a move must narrow the gap", () => {
  // One big VM: moving it would only swap the imbalance.
  const vms = [vm("big", "h1", "running", 3, 1536)];
  const plan = planRebalance(cluster([host("h1"), host("h2")], vms), vms, opts);
  assert.deepEqual(plan.moves, []);
  assert.match(plan.reason, /^no VM on h1 fits on h2 and narrows the gap/);
});

Deno.test("planRebalance() picks the VM that balances best, stopped ones on a tie", () => {
  const vms = [
    vm("a", "h1", "running"),
    vm("b", "h1", "stopped", 1, 128, "stopped"),
    vm("c", "h1", "running", 2, 1024),
  ];
  const plan = planRebalance(cluster([host("h1"), host("h2")], vms), vms, {
    threshold: 0.1,
    maxMoves: 1,
    running: true,
  });
  // c alone balances best (h1 2 CPUs/256 MiB vs h2 2 CPUs/1024 MiB).
  assert.deepEqual(plan.moves.map((m) => m.vm), ["c"]);
  const small = [vm("a", "h1"), vm("b", "h1", "stopped", 1, 128, "stopped")];
  const tie = planRebalance(
    cluster([host("h1", 2, 512), host("h2", 2, 512)], small),
    small,
    { threshold: 0.1, maxMoves: 2, running: true },
  );
  assert.deepEqual(tie.moves.map((m) => m.vm), ["b"]);
});

Deno.test("planRebalance() leaves VMs in transition or being deleted", () => {
  const vms = [
    vm("starting", "h1", "starting"),
    vm("deleting", "h1", "deleting", 1, 128, "deleted"),
    vm("failed", "h1", "failed"),
    vm("crashed", "h1", "crashed"),
  ];
  const cands = cluster([host("h1"), host("h2")], vms);
  const plan = planRebalance(cands, vms, opts);
  assert.deepEqual(plan.moves, []);
});

Deno.test("planRebalance() only uses live active hosts as source and target", () => {
  const vms = ["a", "b", "c", "d"].map((id) => vm(id, "h1"));
  const dead = { ...host("h2"), alive: false };
  const draining: Host = { ...host("h3"), state: "draining" };
  const plan = planRebalance(
    cluster([host("h1"), dead, draining], vms),
    vms,
    opts,
  );
  assert.deepEqual(plan.moves, []);
  assert.equal(plan.reason, "1 live active host(s): nothing to balance");
  // The target must have room.
  const full = [vm("x", "h2", "running", 4, 128)];
  const all = [...vms, ...full];
  const tight = planRebalance(
    cluster([host("h1", 8, 2048), host("h2", 4, 4096)], all),
    all,
    opts,
  );
  assert.deepEqual(tight.moves, []);
});

Deno.test("planRebalance() spreads over several hosts, least loaded first", () => {
  const vms = ["a", "b", "c", "d", "e", "f"].map((id) => vm(id, "h1"));
  const plan = planRebalance(
    cluster([host("h1", 6, 1536), host("h2", 6, 1536), host("h3", 6, 1536)], [
      ...vms,
      vm("z", "h3"),
    ]),
    [...vms, vm("z", "h3")],
    { threshold: 0.05, maxMoves: 10, running: true },
  );
  // 6+0+1 VMs become 3+2+2: a fourth move would only swap the gap.
  assert.deepEqual(plan.moves.map((m) => m.to), ["h2", "h3", "h2"]);
  assert.match(plan.reason, /^no VM on h1 fits on h\d and narrows the gap/);
});

Deno.test("planRebalance() moves no running VM unless allowed, and says why", () => {
  const vms = ["a", "b", "c", "d"].map((id) => vm(id, "h1"));
  const cands = cluster([host("h1"), host("h2")], vms);
  const plan = planRebalance(cands, vms, { ...opts, running: false });
  assert.deepEqual(plan.moves, []);
  assert.equal(
    plan.reason,
    "no VM on h1 fits on h2 and narrows the gap (4 running VM(s) stay: " +
      "scheduler.rebalanceRunning is off and they are not movable): " +
      "h1 63%, h2 0%",
  );
  // The same imbalance with the admin's option: two running VMs move.
  const allowed = planRebalance(cands, vms, opts);
  assert.deepEqual(allowed.moves.map((m) => [m.vm, m.phase]), [
    ["a", "running"],
    ["b", "running"],
  ]);
});

Deno.test("planRebalance() moves stopped VMs and running movable ones by default", () => {
  const movable = vm("m", "h1");
  movable.spec.movable = true;
  const fixed = vm("f", "h1");
  fixed.spec.movable = false;
  const vms = [
    vm("a", "h1"),
    fixed,
    movable,
    vm("s", "h1", "stopped", 1, 128, "stopped"),
  ];
  const plan = planRebalance(
    cluster([host("h1"), host("h2")], vms),
    vms,
    { ...opts, running: false },
  );
  // Equal sizes: the stopped VM first (a tie), then the movable one.
  assert.deepEqual(plan.moves.map((m) => [m.vm, m.phase]), [
    ["s", "stopped"],
    ["m", "running"],
  ]);
  assert.ok(mayMove(movable, false));
  assert.ok(!mayMove(fixed, false));
  assert.ok(mayMove(fixed, true));
  assert.ok(!mayMove(vm("x", "h1", "starting"), true));
});
