/**
 * Tests of QemuDriver (drivers/qemu/driver.ts) with real qemu under TCG
 * booting the tiny test guest: life cycle, adoption, stop fallbacks,
 * concurrency, failures that leave no process, and handle checks.
 */
import assert from "node:assert/strict";
import type { VmDriver } from "../../tasks/context.ts";
import { CommandError, run } from "../runner.ts";
import { processArgs } from "./_proc.ts";
import {
  guestSpec,
  pidGone,
  qemuPidsUnder,
  serialHasMarker,
  waitFor,
  withDriver,
} from "./_test_guest.ts";
import { QEMU_USER, qemuArgs, type QemuSpec } from "./args.ts";
import { QEMU_NICE } from "./launch.ts";
import { ensureQemuUser } from "./qemu_user.ts";
import { vmPaths } from "./vm_paths.ts";
import type { QemuHandle } from "./handle.ts";
import { queryStatus } from "./qmp.ts";

/**
 * `pid` runs as the qemu user (no capabilities), under its seccomp filter,
 * at nice QEMU_NICE, in its own session.
 */
async function assertConfined(pid: number): Promise<void> {
  const { uid, gid } = await ensureQemuUser(QEMU_USER);
  assert.notEqual(uid, 0);
  // runas happens once qemu has made its machine: wait for it.
  const status = () => Deno.readTextFile(`/proc/${pid}/status`);
  await waitFor(
    "qemu to drop to its user",
    async () => /^Uid:\s+[1-9]/m.test(await status()),
    10_000,
  );
  const text = await status();
  const field = (name: string) =>
    text.match(new RegExp(`^${name}:\\s+(.*)$`, "m"))?.[1].split(/\s+/);
  assert.deepEqual(field("Uid"), Array(4).fill(String(uid)));
  assert.deepEqual(field("Gid"), Array(4).fill(String(gid)));
  assert.deepEqual(field("CapEff"), ["0000000000000000"]);
  assert.deepEqual(field("Seccomp"), ["2"]);
  assert.deepEqual(field("NoNewPrivs"), ["1"]);
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  assert.equal(Number(fields[16]), QEMU_NICE, "nice");
  assert.equal(Number(fields[3]), pid, "session leader");
}

Deno.test("QemuDriver runs a VM through its whole life cycle", async () => {
  await withDriver(async (driver, stateDir) => {
    const asDriver: VmDriver = driver; // the worker takes it as a VmDriver
    assert.equal(asDriver.name, "qemu");
    const spec = await guestSpec("vm-life");
    const handle = await driver.start(spec);
    assert.equal(handle.driver, "qemu");
    assert.equal(handle.accel, "tcg");
    assert.equal(handle.dir, `${stateDir}/vms/vm-life`);
    assert.equal(handle.pidfile, `${stateDir}/vms/vm-life/qemu.pid`);
    assert.equal(handle.console, `${stateDir}/vms/vm-life/console.sock`);
    assert.equal(handle.vnc, `${stateDir}/vms/vm-life/vnc.sock`);
    // qemu made the VNC socket as root before -runas, in root's own dir.
    const vnc = await Deno.stat(handle.vnc!);
    assert.ok(vnc.isSocket);
    assert.equal(vnc.uid, 0);
    assert.equal((await Deno.stat(handle.dir)).mode! & 0o777, 0o700);
    assert.equal(await queryStatus(handle.qmp), "running");
    assert.deepEqual(await driver.inspect(handle), { state: "running" });
    await assertConfined(handle.pid);

    const bootMs = await waitFor(
      "the guest marker",
      serialHasMarker(handle),
      30_000,
    );
    console.log(`guest marker after ${bootMs} ms from start() resolving`);

    const again = await driver.start(spec);
    assert.equal(again.pid, handle.pid, "start() is idempotent");
    assert.deepEqual(await qemuPidsUnder(stateDir), [handle.pid]);

    const stored: QemuHandle = JSON.parse(JSON.stringify(handle));
    assert.deepEqual(await driver.recover(stored), handle);
    // A handle stored before VMs had console sockets still recovers.
    const { console: _, vnc: _v, ...old } = stored;
    assert.deepEqual(await driver.recover(old), old);
    assert.deepEqual(await driver.listLocal(), ["vm-life"]);

    Deno.kill(handle.pid, "SIGKILL");
    await waitFor("the killed qemu to vanish", pidGone(handle.pid), 5_000);
    assert.deepEqual(await driver.inspect(stored), { state: "gone" });
    assert.equal(await driver.recover(stored), null);

    const restarted = await driver.start(spec);
    assert.notEqual(restarted.pid, handle.pid);
    assert.deepEqual(await driver.inspect(restarted), { state: "running" });
    await assertConfined(restarted.pid);

    await driver.stop(restarted);
    assert.equal(await processArgs(restarted.pid), null);
    assert.deepEqual(await driver.inspect(restarted), { state: "gone" });
    await driver.stop(restarted);

    await driver.destroy("vm-life");
    await assert.rejects(() => Deno.stat(handle.dir), Deno.errors.NotFound);
    await driver.destroy("vm-life");
    assert.deepEqual(await driver.listLocal(), []);
  });
});

Deno.test("QemuDriver adopts a qemu started before VMs had a console socket", async () => {
  await withDriver(async (driver, stateDir) => {
    const spec = await guestSpec("vm-old");
    const paths = vmPaths(stateDir, spec.id);
    // As the driver started it then: daemonized, without the sandbox.
    const args = qemuArgs(spec, paths, "tcg").map((arg) =>
      arg.startsWith("socket,id=serial0,")
        ? `file,id=serial0,path=${paths.serial}`
        : arg
    ).filter((arg, i, all) =>
      !["-sandbox", "-vnc"].includes(arg) &&
      !["-sandbox", "-vnc"].includes(all[i - 1])
    );
    args.push("-daemonize");
    await Deno.mkdir(paths.dir, { recursive: true });
    await run("qemu-system-x86_64", args);
    const handle = await driver.start(spec);
    assert.equal(handle.console, undefined);
    assert.equal(handle.vnc, undefined);
    assert.deepEqual(await driver.listNics(handle), []);
    await driver.stop(handle, { force: true });
  });
});

Deno.test("QemuDriver.stop() falls back to SIGTERM when QMP is unreachable", async () => {
  await withDriver(async (driver) => {
    const handle = await driver.start(await guestSpec("vm-term"));
    await Deno.remove(handle.qmp);
    const inspected = await driver.inspect(handle);
    assert.equal(inspected.state, "unknown");
    assert.match(inspected.detail ?? "", /Cannot connect to QMP/);

    const started = Date.now();
    await driver.stop(handle, { graceMs: 300 });
    assert.ok(Date.now() - started >= 300, "waited for quit before SIGTERM");
    assert.equal(await processArgs(handle.pid), null);
  });
});

Deno.test("QemuDriver starts one qemu for concurrent start() calls; destroy() refuses while it runs", async () => {
  await withDriver(async (driver, stateDir) => {
    const spec = await guestSpec("vm-busy");
    const [handle, twin] = await Promise.all([
      driver.start(spec),
      driver.start(spec),
    ]);
    assert.equal(twin.pid, handle.pid);
    assert.deepEqual(await qemuPidsUnder(stateDir), [handle.pid]);
    await assert.rejects(
      () => driver.destroy("vm-busy"),
      /Cannot destroy vm vm-busy: qemu pid \d+ is still running/,
    );
    await driver.stop(handle, { force: true });
    await driver.destroy("vm-busy");
  });
});

Deno.test("QemuDriver.start() fails with qemu's stderr and leaves no process", async () => {
  await withDriver(async (driver, stateDir) => {
    const spec = await guestSpec("vm-bad");
    const err = await driver.start({
      ...spec,
      boot: { kernel: `${stateDir}/missing-vmlinux` },
    }).catch((e) => e);
    assert.ok(err instanceof CommandError, String(err));
    assert.match(
      err.message,
      /^Cannot run qemu-system-x86_64: exit 1: .*missing-vmlinux/,
    );
    assert.deepEqual(await qemuPidsUnder(stateDir), []);
  });
});

Deno.test("QemuDriver.start() is aborted by its signal and leaves no process", async () => {
  await withDriver(async (driver, stateDir) => {
    const reason = new Error("lease lost");
    await assert.rejects(
      () =>
        driver.start(specWithoutGuest("vm-abort"), {
          signal: AbortSignal.abort(reason),
        }),
      (err) => err === reason,
    );
    const spec = await guestSpec("vm-abort");
    for (const afterMs of [5, 20, 40, 60, 80, 120]) {
      const controller = new AbortController();
      setTimeout(() => controller.abort(reason), afterMs);
      const outcome = await driver.start(spec, { signal: controller.signal })
        .catch((err: Error) => err);
      if (!(outcome instanceof Error)) {
        await driver.stop(outcome, { force: true });
        continue;
      }
      assert.ok(
        outcome === reason || outcome.cause === reason,
        String(outcome),
      );
      // A daemon forked just before the abort must not survive either.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(
        await qemuPidsUnder(stateDir),
        [],
        `abort after ${afterMs} ms`,
      );
    }
  });
});

Deno.test("QemuDriver never touches a process that is not its qemu", async () => {
  await withDriver(async (driver, stateDir) => {
    const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      const handle: QemuHandle = {
        driver: "qemu",
        pid: sleeper.pid,
        dir: `${stateDir}/vms/vm-x`,
        qmp: `${stateDir}/vms/vm-x/qmp.sock`,
        serial: `${stateDir}/vms/vm-x/serial.log`,
        pidfile: `${stateDir}/vms/vm-x/qemu.pid`,
        accel: "tcg",
        startedAt: new Date().toISOString(),
      };
      assert.deepEqual(await driver.inspect(handle), { state: "gone" });
      assert.equal(await driver.recover(handle), null);
      await driver.stop(handle);
      assert.notEqual(await processArgs(sleeper.pid), null, "sleep still runs");

      await Deno.mkdir(handle.dir, { recursive: true });
      await Deno.writeTextFile(handle.pidfile, `${sleeper.pid}\n`);
      await driver.destroy("vm-x");
      assert.notEqual(await processArgs(sleeper.pid), null, "sleep still runs");
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
    }
  });
});

Deno.test("QemuDriver rejects a malformed handle", async () => {
  await withDriver(async (driver) => {
    const bad = {
      driver: "qemu",
      pid: 1,
      dir: "/x",
      qmp: "/x",
      serial: "/x",
      pidfile: "/x",
    };
    await assert.rejects(
      () => driver.inspect(bad as QemuHandle),
      { name: "TypeError", message: /pid must be an integer above 1/ },
    );
    await assert.rejects(
      () => driver.stop({ ...bad, pid: 1234, qmp: "qmp.sock" } as QemuHandle),
      { name: "TypeError", message: /qmp must be an absolute path/ },
    );
    await assert.rejects(
      () =>
        driver.listNics(
          { ...bad, pid: 1234, console: "console.sock" } as QemuHandle,
        ),
      { name: "TypeError", message: /console must be an absolute path/ },
    );
  });
});

Deno.test("QemuDriver.listLocal() lists only VM directories", async () => {
  await withDriver(async (driver, stateDir) => {
    assert.deepEqual(await driver.listLocal(), []);
    await Deno.mkdir(`${stateDir}/vms/vm-b`, { recursive: true });
    await Deno.mkdir(`${stateDir}/vms/vm-a`);
    await Deno.mkdir(`${stateDir}/vms/Not_A_VM`);
    await Deno.writeTextFile(`${stateDir}/vms/vm-file`, "");
    assert.deepEqual(await driver.listLocal(), ["vm-a", "vm-b"]);
  });
});

function specWithoutGuest(id: string): QemuSpec {
  return {
    id,
    name: id,
    cpus: 1,
    memoryMiB: 128,
    boot: { kernel: "/nonexistent/vmlinux" },
  };
}
