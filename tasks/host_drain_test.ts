/**
 * Tests of drainMove() (tasks/host_drain.ts) and moveSkip()
 * (tasks/vm_move.ts): the moves a host drain makes and why a VM is not moved.
 */
import assert from "node:assert/strict";
import type { Vm } from "../core/schemas.ts";
import { drainMove } from "./host_drain.ts";
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
