/**
 * The benchmark still runs: `scripts/bench/main.ts --quick` against real etcd,
 * the API and a worker with qemu. Checks that every figure is produced; the
 * figures themselves are not judged here (speed goals live in the bench).
 */
import assert from "node:assert/strict";
import { ROOT } from "./helpers/cluster.ts";

Deno.test("bench --quick produces every figure", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}scripts/bench/main.ts`,
      "--quick",
      "--no-write",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr).slice(-2000));
  const json = JSON.parse(stdout.trim().split("\n").at(-1)!);
  const text = JSON.stringify(json);
  for (
    const key of [
      "cas",
      "claim",
      "api",
      "place",
      "vm",
      "image",
      "failover",
      "failoverSim",
      "net",
      "metadata",
    ]
  ) {
    assert.ok(
      text.includes(`"${key}`),
      `figure ${key} missing: ${text.slice(0, 500)}`,
    );
  }
});
