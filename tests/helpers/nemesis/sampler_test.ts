/**
 * Tests of sampler.ts: `DoubleRunTracker` folding samples into double-run
 * episodes, and the sim sampler seeing one VM's process on two hosts.
 */
import assert from "node:assert/strict";
import { vmProcs } from "./procs.ts";
import { DoubleRunTracker, startSampler } from "./sampler.ts";

Deno.test("DoubleRunTracker folds consecutive samples of one VM on two hosts into one episode", () => {
  const t = new DoubleRunTracker();
  const a = { pid: 1, vm: "vm-1", host: "h1" };
  const b = { pid: 2, vm: "vm-1", host: "h2" };
  t.add(100, [a]);
  t.add(150, [a, b]);
  t.add(200, [a, b, { pid: 3, vm: "vm-2", host: "h3" }]);
  t.add(250, [b]);
  t.add(300, [a, { ...b, pid: 4 }]);
  assert.deepEqual(t.episodes(), [
    {
      vm: "vm-1",
      hosts: ["h1", "h2"],
      from: 150,
      to: 200,
      samples: 2,
      pids: [1, 2],
    },
    {
      vm: "vm-1",
      hosts: ["h1", "h2"],
      from: 300,
      to: 300,
      samples: 1,
      pids: [1, 4],
    },
  ]);
});

Deno.test("the sim sampler sees a sim process on two hosts as a double run", async () => {
  const root = await Deno.makeTempDir({ prefix: "uc-sampler-" });
  const children: Deno.ChildProcess[] = [];
  try {
    for (const host of ["h1", "h2"]) {
      const pidfile = `${root}/${host}/vms/vm-x/sim.pid`;
      children.push(
        new Deno.Command("bash", {
          args: ["-c", `exec -a "ucloud-sim ${pidfile}" sleep 30`],
          stdin: "null",
        }).spawn(),
      );
    }
    const sampler = await startSampler(root, "sim", 20);
    const end = Date.now() + 5000;
    while (vmProcs(root, "sim").length < 2 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 100));
    const r = await sampler.stop();
    assert.equal(r.doubleRuns.length, 1);
    assert.deepEqual(r.doubleRuns[0].hosts, ["h1", "h2"]);
    assert.deepEqual(
      r.doubleRuns[0].pids.sort((a, b) => a - b),
      children.map((c) => c.pid).sort((a, b) => a - b),
    );
    assert.ok(r.samples >= 3);
  } finally {
    for (const c of children) {
      c.kill("SIGKILL");
      await c.status;
    }
    await Deno.remove(root, { recursive: true });
  }
});
