/**
 * Tests of SimDriver (drivers/sim/driver.ts), one plain process per VM: life
 * cycle, recovery by a new driver, fencing, NICs, stop and reboot.
 */
import assert from "node:assert/strict";
import type { VmDriver } from "../../tasks/context.ts";
import { owns, SimDriver } from "./driver.ts";

const spec = (id: string) => ({
  id,
  name: "a",
  cpus: 1,
  memoryMiB: 128,
  boot: { disk: "/dev/null", format: "raw" as const },
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

async function waitGone(h: { pid: number; pidfile: string }): Promise<void> {
  const until = Date.now() + 5000;
  while (Date.now() < until && await owns(h.pid, h.pidfile)) {
    await new Promise((r) => setTimeout(r, 10));
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
    await waitGone(a);
    assert.equal((await d.inspect(a)).state, "gone");
    assert.deepEqual(await d.fence(), ["vm-b"]);
    // SIGKILL is delivered asynchronously: the process dies a moment later.
    await waitGone(b);
    assert.equal(await owns(b.pid, b.pidfile), false);
    await assert.rejects(
      d.recover({ driver: "qemu", pid: 1 }),
      /not a sim handle/,
    );
  });
});

Deno.test("sim: NICs from the spec, plug and unplug idempotent, gone with the process", async () => {
  await withDriver(async (d) => {
    const nic = (slot: number, mac = `52:54:00:00:00:0${slot}`) => ({
      slot,
      tap: `tap${slot}`,
      mac,
    });
    const h = await d.start({ ...spec("vm-n"), nics: [nic(2), nic(0)] });
    assert.deepEqual(await d.listNics(h), [0, 2]);
    await d.plugNic(h, nic(5));
    await d.plugNic(h, nic(5)); // already there: fine
    await d.plugNic(h, nic(0, "52:54:00:00:00:00".toUpperCase()));
    await assert.rejects(
      d.plugNic(h, nic(5, "52:54:00:00:00:99")),
      /Cannot plug NIC into slot 5 of vm vm-n: the slot holds a NIC with MAC 52:54:00:00:00:05; unplug it first/,
    );
    assert.deepEqual(await d.listNics(h), [0, 2, 5]);
    // A re-attaching start() keeps the NICs the VM has now.
    await d.start({ ...spec("vm-n"), nics: [nic(0)] });
    assert.deepEqual(await d.listNics(h), [0, 2, 5]);
    await d.unplugNic(h, 2);
    await d.unplugNic(h, 2); // empty slot: fine
    await d.unplugNic(h, 7);
    assert.deepEqual(await d.listNics(h), [0, 5]);
    await assert.rejects(d.unplugNic(h, 8), {
      name: "RangeError",
      message: /Cannot unplug NIC: slot must be an integer from 0 to 7/,
    });
    await assert.rejects(d.plugNic(h, { ...nic(1), tap: "Bad_Tap" }), {
      name: "TypeError",
      message: /Cannot plug NIC: nic.tap must be/,
    });
    await d.stop(h);
    await assert.rejects(
      d.listNics(h),
      /Cannot list NICs: sim process \d+ of vm vm-n is not running/,
    );
    await assert.rejects(d.plugNic(h, nic(1)), /is not running/);
    const again = await d.start(spec("vm-n"));
    assert.deepEqual(await d.listNics(again), []);
    await assert.rejects(
      d.start({ ...spec("vm-m"), nics: [nic(1), nic(1)] }),
      /Cannot start vm vm-m: nics\[1\].slot 1 is already used/,
    );
    assert.deepEqual(await d.listLocal(), ["vm-n"]);
  });
});

Deno.test("sim: stop() is the power button: SIGTERM ends it, an ignoring one is killed after the timeout, force at once", async () => {
  await withDriver(async (d) => {
    const h = await d.start(spec("vm-1"));
    const stopped = await d.stop(h);
    assert.equal(stopped.how, "shutdown");
    assert.ok(stopped.ms < 5_000, `${stopped.ms} ms`);
    // Already gone: nothing to wait for (a few ms of checking at most).
    const gone = await d.stop(h);
    assert.equal(gone.how, "gone");
    assert.ok(gone.ms < 1_000, `${gone.ms} ms`);

    const deaf = await d.start({
      ...spec("vm-2"),
      boot: { kernel: "/k", append: "console=ttyS0 ucloud.ignore_acpi=1" },
    });
    const late = await d.stop(deaf, { timeoutMs: 300 });
    assert.equal(late.how, "forced");
    assert.ok(late.ms >= 300, `${late.ms} ms`);
    assert.equal(await owns(deaf.pid, deaf.pidfile), false);

    const again = await d.start(spec("vm-3"));
    assert.equal((await d.stop(again, { force: true })).how, "forced");
    assert.equal(await owns(again.pid, again.pidfile), false);
  });
});

Deno.test("sim: reboot() keeps the process; fails when it is gone", async () => {
  await withDriver(async (d) => {
    const h = await d.start(spec("vm-1"));
    assert.equal((await d.reboot(h)).how, "reboot");
    assert.equal((await d.reboot(h, { force: true })).how, "forced");
    assert.equal((await d.start(spec("vm-1"))).pid, h.pid);
    await d.stop(h, { force: true });
    await assert.rejects(
      () => d.reboot(h),
      /Cannot reboot: sim process \d+ of vm vm-1 is not running/,
    );
  });
});
