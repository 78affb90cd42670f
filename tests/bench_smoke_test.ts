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
      "scrape",
    ]
  ) {
    assert.ok(
      text.includes(`"${key}`),
      `figure ${key} missing: ${text.slice(0, 500)}`,
    );
  }
});

Deno.test("bench --only=scale at 2 hosts measures etcd, CPU and memory for each VM count and the churn", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}scripts/bench/main.ts`,
      "--quick",
      "--no-write",
      "--only=scale",
      "--scale-hosts=2",
      "--scale-vms=4,2",
      "--idle-s=2",
      "--churn-s=2",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr).slice(-3000));
  const { scale } = JSON.parse(stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(
    scale.stages.map((s: { vms: number }) => s.vms),
    [4, 8],
    "the VM counts run ascending, per host times hosts",
  );
  for (const { idle: w, running, vms } of scale.stages) {
    assert.equal(running, vms, "every stage settled");
    assert.ok(w.etcd.seconds >= 2, JSON.stringify(w));
    for (const x of [w.etcd.requests, w.etcd.sentBytes, w.workerCpu]) {
      assert.ok(Number.isFinite(x) && x >= 0, JSON.stringify(w));
    }
    assert.ok(w.apiMiB > 0 && w.workerMiB > 0 && w.fencerMiB > 0);
  }
  // Every create is a transaction through the API.
  assert.ok(scale.churn.cycles > 0, JSON.stringify(scale.churn));
  assert.ok(scale.churn.etcd.byMethod.Txn > 0, JSON.stringify(scale.churn));
  const g = scale.growth.sentBytes;
  assert.ok(g === null || Number.isFinite(g), JSON.stringify(scale.growth));
  assert.match(stdout, /scale idle growth 2 -> 4 VMs\/host/);
});

Deno.test("bench --only=web --quick times the page from clicking create to running and the console from clicking to its first frame", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}scripts/bench/main.ts`,
      "--quick",
      "--no-write",
      "--only=web",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr).slice(-3000));
  const { web } = JSON.parse(stdout.trim().split("\n").at(-1)!);
  assert.equal(web.clickToPageRunningMs.n, 2, JSON.stringify(web));
  assert.equal(web.clickToListRunningMs.n, 2, JSON.stringify(web));
  assert.equal(web.clickToFrameMs.n, 1, JSON.stringify(web));
  for (const s of ["clickToPageRunningMs", "clickToConnectedMs"]) {
    assert.ok(web[s].min > 0, JSON.stringify(web));
  }
  // The first frame comes after the connect.
  assert.ok(web.clickToFrameMs.min >= web.clickToConnectedMs.min);
  assert.match(stdout, /web: click create to the page showing running/);
  assert.match(stdout, /web: console click to first frame/);
});
