import assert from "node:assert/strict";
import type { VmDriver } from "../../tasks/context.ts";
import { owns, SimDriver } from "./driver.ts";

const spec = (id: string) => ({
  id,
  name: "a",
  cpus: 1,
  memoryMiB: 128,
  boot: { disk: "/dev/null" },
});

async function withDriver(f: (d: SimDriver, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "uc-sim-" });
  const d = new SimDriver({ stateDir: dir });
  try {
    await f(d, dir);
  } finally {
    await d.fence();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("sim: start, inspect, recover, stop, destroy", async () => {
  await withDriver(async (d, dir) => {
    const asDriver: VmDriver = d; // the worker takes it like the qemu driver
    assert.equal(asDriver.name, "sim");
    const h = await d.start(spec("vm-1"));
    assert.equal(h.driver, "sim");
    assert.equal(h.pidfile, `${dir}/vms/vm-1/sim.pid`);
    assert.ok(await owns(h.pid, h.pidfile));
    assert.deepEqual(await d.inspect(h), { state: "running" });
    // Idempotent: a second start re-attaches to the same process.
    assert.equal((await d.start(spec("vm-1"))).pid, h.pid);
    assert.deepEqual(await d.recover(h), h);
    assert.deepEqual(await d.listLocal(), ["vm-1"]);
    await assert.rejects(d.destroy("vm-1"), /still running; stop it first/);

    await d.stop(h);
    assert.equal(await owns(h.pid, h.pidfile), false);
    assert.equal((await d.inspect(h)).state, "gone");
    assert.equal(await d.recover(h), null);
    await d.stop(h); // idempotent
    await d.destroy("vm-1");
    await d.destroy("vm-1");
    assert.deepEqual(await d.listLocal(), []);
  });
});

Deno.test("sim: the process outlives a new driver; kill shows gone; fence", async () => {
  await withDriver(async (d, dir) => {
    const a = await d.start(spec("vm-a"));
    const b = await d.start(spec("vm-b"));
    // Another driver instance (a restarted worker) re-adopts it.
    const d2 = new SimDriver({ stateDir: dir });
    assert.deepEqual(await d2.recover(a), a);
    Deno.kill(a.pid, "SIGKILL");
    const until = Date.now() + 5000;
    while (Date.now() < until && (await d.inspect(a)).state !== "gone") {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal((await d.inspect(a)).state, "gone");
    assert.deepEqual(await d.fence(), ["vm-b"]);
    assert.equal(await owns(b.pid, b.pidfile), false);
    await assert.rejects(
      d.recover({ driver: "qemu", pid: 1 }),
      /not a sim handle/,
    );
  });
});
