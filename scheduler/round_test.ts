/**
 * Unit tests of round.ts: what `planRound()` plans in one maintenance round
 * (rebalance moves, resumed drains) and which tasks `isMove()` counts.
 */
import assert from "node:assert/strict";
import { ConfigSchema } from "../core/config.ts";
import type { Alloc, Host, Vm } from "../core/schemas.ts";
import { host, task, vm } from "./_fixtures.ts";
import { isMove, planRound, type RoundInput } from "./round.ts";
import { reserve } from "./resources.ts";

const scheduler = ConfigSchema.shape.scheduler.parse({});

/** Two live hosts: `a` with the VMs given, `b` empty. */
function input(vms: Vm[], extra: Partial<RoundInput> = {}): RoundInput {
  let alloc: Alloc | null = null;
  for (const v of vms) {
    alloc = reserve(alloc, { cpus: v.spec.cpus, memoryMiB: v.spec.memory });
  }
  return {
    hosts: [host("a"), host("b")],
    alive: new Set(["a", "b"]),
    allocs: new Map(alloc ? [["a", alloc]] : []),
    vms,
    running: [],
    ...extra,
  };
}

const stopped = (id: string) => vm(id, "a", "stopped", 2, 1024, "stopped");

Deno.test("planRound() plans rebalance moves when nothing is in flight", () => {
  const p = planRound(input([stopped("v1"), stopped("v2")]), scheduler);
  assert.deepEqual(p.drains, []);
  assert.deepEqual(p.moves.map((m) => [m.vm, m.from, m.to]), [
    ["v1", "a", "b"],
  ]);
});

Deno.test("planRound() resumes drains of live draining hosts without one", () => {
  const draining: Host = { ...host("a"), state: "draining" };
  const gone: Host = { ...host("c"), state: "draining" };
  const vms = [stopped("v1"), vm("v2", "c")];
  const p = planRound(
    input(vms, { hosts: [draining, host("b"), gone] }),
    scheduler,
  );
  assert.deepEqual(p.drains, ["a"]);
  // The drain counts as in flight: no rebalancing meanwhile.
  assert.deepEqual(p.moves, []);
  assert.equal(p.reason, "1 move(s) or drain(s) still in flight");
  const busy = planRound(
    input(vms, {
      hosts: [draining, host("b")],
      running: [task("host.drain", { host: "a" })],
    }),
    scheduler,
  );
  assert.deepEqual(busy.drains, []);
});

Deno.test("planRound() rebalances only with spread and moves allowed", () => {
  const vms = [stopped("v1"), stopped("v2")];
  assert.equal(
    planRound(input(vms), { ...scheduler, policy: "pack" }).reason,
    "scheduler.policy is pack: only drains are rebalanced",
  );
  assert.equal(
    planRound(input(vms), { ...scheduler, rebalanceMaxMoves: 0 }).reason,
    "scheduler.rebalanceMaxMoves is 0",
  );
});

Deno.test("isMove() counts moves, drains and re-placing creates only", () => {
  assert.equal(isMove(task("vm.move", { vm: "v" })), true);
  assert.equal(isMove(task("host.drain", { host: "a" })), true);
  assert.equal(isMove(task("vm.create", { vm: "v", avoid: "a" })), true);
  assert.equal(isMove(task("vm.create", { vm: "v" })), false);
  assert.equal(isMove(task("vm.start", { vm: "v" })), false);
});
