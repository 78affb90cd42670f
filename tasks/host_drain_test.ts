import assert from "node:assert/strict";
import type { Task, Vm } from "../core/schemas.ts";
import { drainMove, drainPlan } from "./host_drain.ts";
import { newTask } from "./queue.ts";
import { moveSkip } from "./vm_move.ts";

const vm = (
  id: string,
  host: string | undefined,
  desired: Vm["desired"] = "running",
  phase: Vm["status"]["phase"] = "running",
): Vm => ({
  id,
  owner: "alice",
  spec: { name: id, cpus: 1, memory: 128, image: "tiny" },
  nics: [],
  desired,
  status: {
    phase,
    ...(host ? { host } : {}),
    updatedAt: "2026-01-01T00:00:00Z",
  },
  createdAt: "2026-01-01T00:00:00Z",
});

const move = (id: string, from: string, state: Task["state"]): Task => ({
  ...newTask({
    kind: "vm.move",
    target: from,
    payload: { vm: id, from, reason: "x" },
  }),
  state,
});

Deno.test("drainPlan() moves every VM on the host, not being deleted, by id", () => {
  const vms = [
    vm("c", "h1"),
    vm("a", "h1", "stopped", "stopped"),
    vm("b", "h2"),
    vm("d", undefined, "running", "pending"),
    vm("e", "h1", "deleted", "deleting"),
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
    { ...newTask({ kind: "vm.start", target: "h1", payload: { vm: "d" } }) },
  ];
  const plan = drainPlan("h1", vms, tasks);
  assert.deepEqual(plan.move.map((v) => v.id), ["c", "d"]);
  assert.deepEqual(plan.moving, ["a", "b"]);
});

Deno.test("drainMove() targets the host and marks the move as a drain", () => {
  const t = drainMove("h1", vm("a", "h1"), "host h1 is draining", 3);
  assert.equal(t.kind, "vm.move");
  assert.equal(t.target, "h1");
  assert.equal(t.owner, "alice");
  assert.equal(t.maxAttempts, 3);
  assert.deepEqual(t.payload, {
    vm: "a",
    from: "h1",
    reason: "host h1 is draining",
    drain: true,
  });
});

Deno.test("moveSkip() says why a VM is not moved", () => {
  assert.equal(moveSkip(null, "h1"), "vm is gone");
  assert.equal(
    moveSkip(vm("a", "h1", "deleted", "deleting"), "h1"),
    "vm is being deleted",
  );
  assert.equal(
    moveSkip(vm("a", "h2"), "h1"),
    "vm is no longer on h1 (on h2)",
  );
  assert.equal(
    moveSkip(vm("a", undefined, "running", "pending"), "h1"),
    "vm is no longer on h1 (pending)",
  );
  assert.equal(moveSkip(vm("a", "h1"), "h1"), null);
  assert.equal(moveSkip(vm("a", "h1", "stopped", "stopped"), "h1"), null);
});
