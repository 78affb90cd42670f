/**
 * Tests of drivers/qemu/serial_log.ts: capping and rotating serial logs, also
 * under a running qemu that goes on writing.
 */
import assert from "node:assert/strict";
import { guestRun } from "../../tests/helpers/console.ts";
import { killQemus, tinyBoot, waitFor } from "../../tests/helpers/cluster.ts";
import { QemuDriver } from "./driver.ts";
import { capLog, capSerialLogs, rotatedLog } from "./serial_log.ts";

const MARKER = "UCLOUD-GUEST-READY";

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "uc-serial-" });
  try {
    await f(dir);
  } finally {
    await killQemus(dir);
    await Deno.remove(dir, { recursive: true });
  }
}

const size = async (path: string) => (await Deno.stat(path)).size;

Deno.test("capLog() keeps the last maxBytes in log.1 and empties the log", async () => {
  await withDir(async (dir) => {
    const log = `${dir}/serial.log`;
    assert.equal(await capLog(log, 10), false, "no log yet");
    await Deno.writeTextFile(log, "0123456789");
    assert.equal(await capLog(log, 10), false, "at the cap");
    await Deno.writeTextFile(log, "abcdefghij-klmnopqrst", { append: true });
    assert.equal(await capLog(log, 10), true);
    assert.equal(await Deno.readTextFile(rotatedLog(log)), "klmnopqrst");
    assert.equal(await size(log), 0);
  });
});

Deno.test("capSerialLogs() rotates every VM's serial.log and qemu.log over the cap", async () => {
  await withDir(async (dir) => {
    assert.deepEqual(await capSerialLogs(dir, 4), { rotated: [], failed: {} });
    for (const [id, text] of [["vm-a", "long text"], ["vm-b", "ok"]]) {
      await Deno.mkdir(`${dir}/vms/${id}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/vms/${id}/serial.log`, text);
    }
    await Deno.mkdir(`${dir}/vms/vm-c`);
    await Deno.writeTextFile(`${dir}/vms/vm-c/qemu.log`, "warning");
    assert.deepEqual(await capSerialLogs(dir, 4), {
      rotated: ["vm-a", "vm-c"],
      failed: {},
    });
    assert.equal(
      await Deno.readTextFile(`${dir}/vms/vm-a/serial.log.1`),
      "text",
    );
    assert.equal(await Deno.readTextFile(`${dir}/vms/vm-c/qemu.log.1`), "ning");
    assert.equal(await Deno.readTextFile(`${dir}/vms/vm-c/qemu.log`), "");
  });
});

Deno.test("a running qemu's serial log rotated in place: qemu writes on at the start of the emptied log", async () => {
  await withDir(async (dir) => {
    const driver = new QemuDriver({ stateDir: dir, accel: "tcg" });
    const spec = {
      id: "vm-log",
      name: "log test",
      cpus: 1,
      memoryMiB: 128,
      boot: await tinyBoot(),
    };
    const h = await driver.start(spec);
    await waitFor(
      "the boot marker",
      async () => (await Deno.readTextFile(h.serial)).includes(MARKER),
    );
    const cap = 16 * 1024;
    await guestRun(h.console!, "head -c 20000 /dev/zero | tr '\\0' a; echo");
    assert.ok(await size(h.serial) > 20000);
    assert.equal(await capLog(h.serial, cap), true);
    assert.equal(await size(rotatedLog(h.serial)), cap);
    assert.match(await Deno.readTextFile(rotatedLog(h.serial)), /a{1000}/);
    await guestRun(h.console!, "echo after-$((6 * 7))");
    const live = await Deno.readTextFile(h.serial);
    assert.ok(live.length < 1000, `live log of ${live.length} bytes`);
    assert.ok(!live.includes("\0"), "a hole: qemu wrote at its old offset");
    assert.match(live, /after-42/);
    // A restart starts a fresh log; the previous boot's is serial.log.1.
    await driver.stop(h);
    await driver.start(spec);
    assert.match(await Deno.readTextFile(rotatedLog(h.serial)), /after-42/);
    assert.doesNotMatch(
      await Deno.readTextFile(h.serial).catch(() => ""),
      /after-42/,
    );
  });
});
