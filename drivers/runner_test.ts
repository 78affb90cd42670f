/**
 * Tests of run() (drivers/runner.ts), the one way outside processes are
 * started: output, exit codes, stderr in errors, timeouts, aborts, stdin and
 * env.
 */
import assert from "node:assert/strict";
import { CommandError, run } from "./runner.ts";

Deno.test("run() resolves with the output of a command that exits 0", async () => {
  const result = await run("sh", ["-c", "echo out; echo err >&2"]);
  assert.deepEqual(result, { code: 0, stdout: "out\n", stderr: "err\n" });
});

Deno.test("run() resolves for true", async () => {
  assert.equal((await run("true", [])).code, 0);
});

Deno.test("run() throws CommandError with the exit code for false", async () => {
  const err = await run("false", []).catch((e) => e);
  assert.ok(err instanceof CommandError);
  assert.equal(err.cmd, "false");
  assert.deepEqual(err.args, []);
  assert.equal(err.code, 1);
  assert.equal(err.message, "Cannot run false: exit 1");
});

Deno.test("run() keeps stderr and names its last lines in the message", async () => {
  const script = "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3";
  const err = await run("sh", ["-c", script]).catch((e) => e);
  assert.ok(err instanceof CommandError);
  assert.equal(err.code, 3);
  assert.equal(err.stderr, "line1\nline2\nline3\nline4\nline5\nline6\nline7\n");
  assert.equal(
    err.message,
    "Cannot run sh: exit 3: line3; line4; line5; line6; line7",
  );
});

Deno.test("run() kills the child on timeout", async () => {
  const started = Date.now();
  const err = await run("sh", ["-c", "echo begun >&2; exec sleep 30"], {
    timeoutMs: 300,
  }).catch((e) => e);
  assert.ok(err instanceof CommandError);
  assert.equal(err.code, null);
  assert.match(err.message, /^Cannot run sh: timed out after 300 ms: begun$/);
  assert.ok(Date.now() - started < 5000);
});

Deno.test("run() stops waiting on timeout when a grandchild holds the pipes", async () => {
  const started = Date.now();
  const err = await run("sh", ["-c", "sleep 2 & sleep 30"], { timeoutMs: 200 })
    .catch((e) => e);
  assert.ok(err instanceof CommandError);
  assert.match(err.message, /timed out/);
  assert.ok(Date.now() - started < 1500);
});

Deno.test("run() kills the child on abort and keeps the reason as cause", async () => {
  const controller = new AbortController();
  const reason = new Error("lease lost");
  setTimeout(() => controller.abort(reason), 100);
  const err = await run("sleep", ["30"], { signal: controller.signal })
    .catch((e) => e);
  assert.ok(err instanceof CommandError);
  assert.equal(err.message, "Cannot run sleep: aborted");
  assert.equal(err.cause, reason);
});

Deno.test("run() does not start a command when the signal is already aborted", async () => {
  const err = await run("true", [], { signal: AbortSignal.abort() })
    .catch((e) => e);
  assert.ok(err instanceof CommandError);
  assert.equal(err.message, "Cannot run true: aborted");
});

Deno.test("run() feeds stdin and passes env", async () => {
  const result = await run("sh", ["-c", 'cat; printf "$GREETING"'], {
    stdin: "hello ",
    env: { GREETING: "world" },
  });
  assert.equal(result.stdout, "hello world");
});

Deno.test("run() throws CommandError for a missing command", async () => {
  const err = await run("/nonexistent/ucloud-cmd", []).catch((e) => e);
  assert.ok(err instanceof CommandError);
  assert.equal(err.code, null);
  assert.match(err.message, /^Cannot run \/nonexistent\/ucloud-cmd: /);
});
