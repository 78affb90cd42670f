/**
 * Tests of QemuDriver.stop() and reboot() with real qemu under TCG: the power
 * button, the timeout, force, a booting and a paused guest.
 */
import assert from "node:assert/strict";
import { processArgs } from "./_proc.ts";
import { QmpClient } from "./qmp.ts";
import {
  guestSpec,
  MARKER,
  qemuPidsUnder,
  serialHasMarker,
  serialText,
  waitFor,
  withDriver,
} from "./_test_guest.ts";

const SHUTDOWN = "UCLOUD-GUEST-SHUTDOWN";
const REBOOT = "UCLOUD-GUEST-REBOOT";
/** Booting the tiny guest under TCG took up to 13 s on a loaded machine. */
const BOOT_MS = 90_000;

Deno.test("QemuDriver.reboot() reboots the guest in the same qemu: by ctrl-alt-delete, then forced", async () => {
  await withDriver(async (driver, stateDir) => {
    const handle = await driver.start(await guestSpec("vm-reboot"));
    await waitFor("the guest marker", serialHasMarker(handle), BOOT_MS);

    const graceful = await driver.reboot(handle);
    assert.equal(graceful.how, "reboot");
    assert.ok(graceful.ms < 60_000, `${graceful.ms} ms`);
    await waitFor(
      "the marker of the second boot",
      serialHasMarker(handle, MARKER, 2),
      BOOT_MS,
    );
    assert.match(await serialText(handle), new RegExp(REBOOT));
    assert.deepEqual(await qemuPidsUnder(stateDir), [handle.pid]);

    const forced = await driver.reboot(handle, { force: true });
    assert.equal(forced.how, "forced");
    await waitFor(
      "the marker of the third boot",
      serialHasMarker(handle, MARKER, 3),
      BOOT_MS,
    );
    assert.equal((await serialText(handle)).split(REBOOT).length, 2);
    assert.deepEqual(await qemuPidsUnder(stateDir), [handle.pid]);
    assert.deepEqual(await driver.inspect(handle), { state: "running" });

    const stopped = await driver.stop(handle);
    console.log(
      `reboot ${graceful.ms} ms, forced reboot ${forced.ms} ms, stop ${stopped.ms} ms`,
    );
    assert.equal(stopped.how, "shutdown");
    assert.match(await serialText(handle), new RegExp(SHUTDOWN));
    assert.equal(await processArgs(handle.pid), null);
    assert.deepEqual(await driver.stop(handle), { how: "gone", ms: 0 });
    await assert.rejects(
      () => driver.reboot(handle),
      /Cannot reboot vm vm-reboot: qemu pid \d+ is not running/,
    );
  });
});

Deno.test("QemuDriver.stop() hard-stops a guest that ignores the power button after the timeout", async () => {
  await withDriver(async (driver) => {
    const handle = await driver.start(
      await guestSpec("vm-deaf", "ucloud.ignore_acpi=1"),
    );
    await waitFor("the guest marker", serialHasMarker(handle), BOOT_MS);
    assert.match(await serialText(handle), /UCLOUD-GUEST-IGNORES-POWER/);

    const reboot = await driver.reboot(handle, { timeoutMs: 1_500 });
    assert.equal(reboot.how, "forced");
    assert.ok(reboot.ms >= 1_500, `${reboot.ms} ms`);
    await waitFor(
      "the marker of the second boot",
      serialHasMarker(handle, MARKER, 2),
      BOOT_MS,
    );

    const stopped = await driver.stop(handle, { timeoutMs: 2_000 });
    assert.equal(stopped.how, "forced");
    assert.ok(stopped.ms >= 2_000, `${stopped.ms} ms`);
    assert.equal(await processArgs(handle.pid), null);
    assert.doesNotMatch(await serialText(handle), new RegExp(SHUTDOWN));
  });
});

Deno.test("QemuDriver.stop({ force: true }) stops at once without asking the guest", async () => {
  await withDriver(async (driver) => {
    const handle = await driver.start(await guestSpec("vm-force"));
    await waitFor("the guest marker", serialHasMarker(handle), BOOT_MS);
    const stopped = await driver.stop(handle, { force: true });
    assert.equal(stopped.how, "forced");
    assert.ok(stopped.ms < 10_000, `${stopped.ms} ms`);
    assert.equal(await processArgs(handle.pid), null);
    assert.doesNotMatch(await serialText(handle), new RegExp(SHUTDOWN));
  });
});

Deno.test("QemuDriver.stop() presses the power button again for a guest that was still booting", async () => {
  await withDriver(async (driver) => {
    const handle = await driver.start(await guestSpec("vm-early"));
    const stopped = await driver.stop(handle, { timeoutMs: BOOT_MS });
    console.log(`stop during boot took ${stopped.ms} ms`);
    assert.equal(stopped.how, "shutdown");
    assert.match(await serialText(handle), new RegExp(SHUTDOWN));
    assert.equal(await processArgs(handle.pid), null);
  });
});

Deno.test("QemuDriver.stop() does not wait for a paused guest: it cannot take the button", async () => {
  await withDriver(async (driver) => {
    const handle = await driver.start(await guestSpec("vm-paused"));
    const qmp = await QmpClient.connect(handle.qmp);
    try {
      await qmp.execute("stop");
    } finally {
      await qmp.close();
    }
    assert.equal((await driver.inspect(handle)).state, "paused");
    const stopped = await driver.stop(handle);
    assert.equal(stopped.how, "forced");
    assert.ok(stopped.ms < 20_000, `${stopped.ms} ms`);
    assert.equal(await processArgs(handle.pid), null);
  });
});
