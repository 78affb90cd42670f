/**
 * Unit tests of drain.ts: which VMs `drainPlan()` moves off a draining host
 * and which it leaves (being deleted, or with a move still unfinished).
 */
import assert from "node:assert/strict";
import type { Task } from "../core/schemas.ts";
import { task, vm } from "./_fixtures.ts";
import { drainPlan } from "./drain.ts";

const move = (id: string, from: string, state: Task["state"]): Task =>
  task("vm.move", { vm: id, from, reason: "x" }, state, from);

Deno.test("drainPlan() moves every VM on the host, not being deleted, by id", () => {
  const vms = [
    vm("c", "h1"),
    vm("a", "h1", "stopped", 1, 128, "stopped"),
    vm("b", "h2"),
    vm("d", undefined, "pending"),
    vm("e", "h1", "deleting", 1, 128, "deleted"),
  ];
  const plan = drainPlan("h1", vms, []);
  assert.deepEqual(plan.move.map((v) => v.id), ["a", "c"]);
  assert.deepEqual(plan.moving, []);
});

Deno.test("drainPlan() leaves VMs whose vm.move off this host is unfinished", () => {
  const vms = [vm("a", "h1"), vm("b", "h1"), vm("c", "h1"), vm("d", "h1")];
  const tasks = [
    move("a", "h1", "queued"),
    move("b", "h1", "running"),
    move("c", "h1", "failed"),
    move("d", "h2", "queued"),
    task("vm.start", { vm: "d" }, "queued", "h1"),
  ];
  const plan = drainPlan("h1", vms, tasks);
  assert.deepEqual(plan.move.map((v) => v.id), ["c", "d"]);
  assert.deepEqual(plan.moving, ["a", "b"]);
});
