/**
 * Fencing on real worker processes (sim driver): the deadline file's clock,
 * where it lives, and the fencer the worker keeps running.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { monotonicMs } from "../core/clock.ts";
import { keys } from "../core/keys.ts";
import { Alive, Vm } from "../core/schemas.ts";
import { owns, SimDriver, type SimHandle } from "../drivers/sim/driver.ts";
import { run } from "../drivers/runner.ts";
import { readDeadline } from "../workers/fence.ts";
import {
  type Cluster,
  waitFor,
  withCluster,
  type WorkerProc,
} from "./helpers/cluster.ts";

/** A cluster of sim hosts; no sim VM outlives it (Cluster.stop kills qemus only). */
function withSimCluster(f: (c: Cluster) => Promise<void>): Promise<void> {
  return withCluster(async (c) => {
    c.env.UCLOUD_DRIVER = "sim";
    try {
      await f(c);
    } finally {
      for (const w of c.workers.values()) {
        await w.kill("SIGKILL");
        await w.killFencer();
        await new SimDriver({ stateDir: w.stateDir }).fence();
      }
    }
  }, { guest: false, leaseTtlSeconds: 2 });
}

function alive(c: Cluster, host: string): Promise<unknown> {
  return waitFor(`${host} alive`, () => c.store.get(keys.alive(host), Alive));
}

Deno.test("a worker writes its fence deadline in CLOCK_BOOTTIME ms, not epoch ms", async () => {
  await withSimCluster(async (c) => {
    const w = await c.addWorker({ name: "h1" });
    await alive(c, "h1");
    assert.match(w.runDir, /^\/run\/ucloud\/h1-[0-9a-f]{12}$/);
    const seen = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const d = await readDeadline(w.runDir);
      const now = monotonicMs();
      assert.ok(d !== null && d > now && d <= now + 1500, `${d} vs ${now}`);
      seen.add(d);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(seen.size >= 2, "renewed every keep-alive");
  });
});

/** Creates a VM through the API and waits until it runs; its handle. */
async function runningVm(c: Cluster, name: string): Promise<SimHandle> {
  const app = createApp({ store: c.store });
  const res = await app.request("/v1/vms", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, cpus: 1, memory: 128 }),
  });
  assert.equal(res.status, 201);
  const id = (await res.json()).vm.id;
  const vm = await waitFor(`${name} running`, async () => {
    const v = (await c.store.get(keys.vm(id), Vm))?.value;
    return v?.status.phase === "running" ? v : null;
  });
  return vm.status.handle as SimHandle;
}

/** Stops the host's processes and unmounts its state dir. */
async function teardown(w: WorkerProc): Promise<void> {
  await w.kill("SIGKILL");
  await w.killFencer();
  await new SimDriver({ stateDir: w.stateDir }).fence();
  await run("umount", [w.stateDir]).catch(() =>
    run("umount", ["-l", w.stateDir])
  );
}

Deno.test("a full state filesystem: the worker keeps renewing its deadline (tmpfs run dir) and the fencer spares the VM", async () => {
  await withSimCluster(async (c) => {
    const stateDir = `${c.dir}/hosts/h1`;
    await Deno.mkdir(stateDir, { recursive: true });
    await run("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", stateDir]);
    const w = await c.addWorker({ name: "h1" });
    try {
      await alive(c, "h1");
      const vm = await runningVm(c, "survivor");
      // A guest fills the disk: nothing more can be written there.
      await run("dd", ["if=/dev/zero", `of=${stateDir}/fill`, "bs=64k"])
        .catch(() => {});
      await assert.rejects(
        Deno.writeTextFile(`${stateDir}/probe`, "x"),
        /No space left on device/,
      );
      // Three lease TTLs: the deadline moves on and the VM stays.
      const first = (await readDeadline(w.runDir))!;
      const until = performance.now() + 6000;
      let last = first;
      while (performance.now() < until) {
        last = (await readDeadline(w.runDir))!;
        assert.ok(last > monotonicMs(), `deadline ${last} passed`);
        assert.ok(await owns(vm.pid, vm.pidfile), "the VM was fenced");
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(last >= first + 5000, `deadline moved ${last - first} ms`);
      assert.doesNotMatch(await w.log(), /cannot write the fence deadline/);
      assert.equal(
        (await c.store.get(keys.vm(vm.pidfile.split("/").at(-2)!), Vm))
          ?.value.status.phase,
        "running",
      );
    } finally {
      await teardown(w);
    }
  });
});

async function fencerPid(w: WorkerProc): Promise<number> {
  return Number(
    await Deno.readTextFile(`${w.runDir}/fencer.pid`).catch(() => "0"),
  );
}

function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

Deno.test("a running worker restarts its SIGKILLed fencer within 2 s, which then fences when the worker dies", async () => {
  await withSimCluster(async (c) => {
    const w = await c.addWorker({ name: "h1" });
    await alive(c, "h1");
    const vm = await runningVm(c, "guarded");
    const old = await waitFor("the fencer", async () => {
      const pid = await fencerPid(w);
      return isAlive(pid) ? pid : 0;
    });
    await w.killFencer();
    const killed = performance.now();
    await waitFor(
      "a new fencer",
      async () => {
        const pid = await fencerPid(w);
        return pid !== old && isAlive(pid) ? pid : 0;
      },
      5000,
      20,
    );
    const ms = performance.now() - killed;
    console.log(`new fencer ${ms.toFixed(0)} ms after the SIGKILL`);
    assert.ok(ms < 2000, `new fencer after ${ms} ms`);
    await waitFor(
      "the restart logged",
      async () => (await w.log()).includes("the fencer was gone"),
      5000,
    );
    // The new fencer does its job: the worker dies, the VM is fenced.
    await w.kill("SIGKILL");
    await waitFor(
      "the VM fenced",
      async () => !(await owns(vm.pid, vm.pidfile)),
      5000,
      20,
    );
  });
});
