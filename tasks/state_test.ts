/**
 * Tests of the task state machine (tasks/state.ts) over every pair of states,
 * final states and the bounded history.
 */
import assert from "node:assert/strict";
import { ALLOWED, canTransition, isFinal, transition } from "./state.ts";
import { type Task, TaskState } from "../core/schemas.ts";

const base: Task = {
  id: "t-1",
  kind: "vm.start",
  target: "h1",
  payload: {},
  state: "queued",
  attempts: 0,
  maxAttempts: 3,
  notBefore: 0,
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
  history: [],
};

Deno.test("transition() allows exactly the moves in the table, over every pair", () => {
  const states = TaskState.options;
  let allowed = 0;
  for (const from of states) {
    for (const to of states) {
      const t = { ...base, state: from };
      if (ALLOWED[from].includes(to)) {
        allowed++;
        const n = transition(t, to, { worker: "h1", now: new Date(0) });
        assert.equal(n.state, to);
        assert.equal(n.history.at(-1)?.state, to);
        assert.equal(n.updatedAt, "1970-01-01T00:00:00.000Z");
        assert.ok(canTransition(from, to));
      } else {
        assert.throws(() => transition(t, to), {
          name: "TypeError",
          message: `Cannot move task t-1 from ${from} to ${to}`,
        });
        assert.ok(!canTransition(from, to));
      }
    }
  }
  assert.equal(allowed, 7);
});

Deno.test("isFinal() is true only for succeeded, failed and cancelled", () => {
  assert.deepEqual(
    TaskState.options.filter(isFinal),
    ["succeeded", "failed", "cancelled"],
  );
});

Deno.test("transition() keeps a bounded history and does not mutate", () => {
  let t: Task = { ...base, state: "running" };
  for (let i = 0; i < 50; i++) t = transition(t, "running");
  assert.equal(t.history.length, 20);
  assert.equal(base.history.length, 0);
});
