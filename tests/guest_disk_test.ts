/**
 * The disk-booting test guest (scripts/build_guest_disk.sh) with the real
 * qemu driver under TCG: the build is cached and leaves no loop device or
 * mount; two VMs on qcow2 overlays of it boot, a file written on one disk
 * is not seen by the other and survives a reboot and a new qemu; a disk on
 * a filesystem without O_DIRECT is opened with cache=writeback.
 */
import assert from "node:assert/strict";
import { diskCacheMode } from "../drivers/qemu/disk_cache.ts";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import type { QemuHandle } from "../drivers/qemu/handle.ts";
import { run } from "../drivers/runner.ts";
import {
  GUEST_CACHE,
  killQemus,
  qemuPids,
  waitFor,
} from "./helpers/cluster.ts";
import { guestExec, guestRun } from "./helpers/console.ts";
import { createOverlay, ensureDiskGuest } from "./helpers/disk_guest.ts";

const MARKER = "UCLOUD-GUEST-READY";
/** TCG boots of BIOS, extlinux and the kernel on a loaded 2-core machine. */
const BOOT_MS = 180_000;
const GUEST_CMD_MS = 30_000;

/** Waits until the VM's serial log shows the marker `times` times. */
async function waitMarker(handle: QemuHandle, times = 1): Promise<void> {
  await waitFor(
    `${MARKER} x${times} on ${handle.serial}`,
    async () =>
      (await Deno.readTextFile(handle.serial).catch(() => "")).split(MARKER)
        .length > times,
    BOOT_MS,
    200,
  );
}

/** The `-drive` value of the running qemu. */
async function driveArg(handle: QemuHandle): Promise<string> {
  const args = (await Deno.readTextFile(`/proc/${handle.pid}/cmdline`))
    .split("\0");
  assert.ok(!args.includes("-kernel"), "a disk boot has no -kernel");
  return args[args.indexOf("-drive") + 1];
}

async function sha256(path: string): Promise<string> {
  const { stdout } = await run("sha256sum", [path]);
  return stdout.split(" ")[0];
}

/** Loop devices on a build's disk.raw and mounts on a build's mnt dir. */
async function buildLeftovers(): Promise<string[]> {
  const { stdout } = await run("losetup", ["-a"]);
  const mounts = await Deno.readTextFile("/proc/self/mountinfo");
  return [
    ...stdout.split("\n").filter((line) => line.includes("/disk.raw")),
    ...mounts.split("\n").filter((line) => /\/tmp\.\w+\/mnt /.test(line)),
  ];
}

function spec(id: string, disk: string) {
  return {
    id,
    name: id,
    cpus: 1,
    memoryMiB: 128,
    boot: { disk, format: "qcow2" as const },
  };
}

/** Runs `fn` on a temp dir; afterwards kills its qemus and removes it. */
async function withTempDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await killQemus(dir);
    await waitFor(
      "the qemus to exit",
      async () => (await qemuPids(dir)).length === 0,
      10_000,
    );
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("build_guest_disk.sh builds a cached qcow2 without a backing file and leaves no loop device or mount", async () => {
  const disk = await ensureDiskGuest();
  assert.equal(disk, `${GUEST_CACHE}/images/tiny-disk/disk.qcow2`);
  const { stdout } = await run("qemu-img", [
    "info",
    "-f",
    "qcow2",
    "--output=json",
    disk,
  ]);
  const info = JSON.parse(stdout);
  assert.equal(info.format, "qcow2");
  assert.equal(info["virtual-size"], 64 * 1024 * 1024);
  assert.equal(info["backing-filename"], undefined);
  assert.equal(info["format-specific"].data.corrupt, false);
  const { mtime } = await Deno.stat(disk);
  const started = Date.now();
  assert.equal(await ensureDiskGuest(), disk);
  const cachedMs = Date.now() - started;
  assert.deepEqual((await Deno.stat(disk)).mtime, mtime, "cached: not rebuilt");
  console.log(`cached build_guest_disk.sh run: ${cachedMs} ms`);
  assert.deepEqual(await buildLeftovers(), []);
});

Deno.test("Two VMs on overlays of the disk guest boot; a file one writes is not seen by the other and survives its reboot and a new qemu", async () => {
  const base = await ensureDiskGuest();
  const baseSum = await sha256(base);
  await withTempDir("uc-disk-", async (dir) => {
    const driver = new QemuDriver({ stateDir: `${dir}/state`, accel: "tcg" });
    const disks = [`${dir}/ovl-1.qcow2`, `${dir}/ovl-2.qcow2`];
    for (const disk of disks) await createOverlay(base, disk);

    const started = Date.now();
    const [a, b] = await Promise.all([
      driver.start(spec("vm-disk-a", disks[0])),
      driver.start(spec("vm-disk-b", disks[1])),
    ]);
    await Promise.all([waitMarker(a), waitMarker(b)]);
    console.log(`both disk guests ready after ${Date.now() - started} ms`);
    assert.equal(
      await driveArg(a),
      `file=${disks[0]},format=qcow2,if=none,id=disk0,cache=none`,
    );

    const rootMount = (await guestRun(
      a.console!,
      "grep ' / ' /proc/mounts",
      { timeoutMs: GUEST_CMD_MS },
    )).trim();
    assert.match(rootMount, /^\/dev\/vda1 \/ ext4 rw[ ,]/);
    await guestRun(
      a.console!,
      "echo written-by-a > /ucloud-mark && sync",
      { timeoutMs: GUEST_CMD_MS },
    );
    assert.deepEqual(
      await guestExec(b.console!, "cat /ucloud-mark 2>/dev/null", {
        timeoutMs: GUEST_CMD_MS,
      }),
      { output: "", code: 1 },
      "the other VM's disk does not have the file",
    );

    let t = Date.now();
    const reboot = await driver.reboot(a, { timeoutMs: 60_000 });
    assert.equal(reboot.how, "reboot", "the guest rebooted itself");
    await waitMarker(a, 2);
    console.log(`rebooted and ready again after ${Date.now() - t} ms`);
    assert.equal(
      await guestRun(a.console!, "cat /ucloud-mark", {
        timeoutMs: GUEST_CMD_MS,
      }),
      "written-by-a\n",
    );

    t = Date.now();
    const stopped = await driver.stop(a, { timeoutMs: 60_000 });
    const again = await driver.start(spec("vm-disk-a", disks[0]));
    assert.notEqual(again.pid, a.pid);
    await waitMarker(again);
    console.log(
      `stopped (${JSON.stringify(stopped)}) and booted in a new qemu after ${
        Date.now() - t
      } ms`,
    );
    assert.equal(
      await guestRun(again.console!, "cat /ucloud-mark", {
        timeoutMs: GUEST_CMD_MS,
      }),
      "written-by-a\n",
    );
    await Promise.all([
      driver.stop(again, { force: true }),
      driver.stop(b, { force: true }),
    ]);
    assert.equal(await sha256(base), baseSum, "the base image is unchanged");
  });
});

Deno.test("QemuDriver opens a disk on a filesystem without O_DIRECT (ramfs) with cache=writeback, and boots it", async () => {
  const base = await ensureDiskGuest();
  await withTempDir("uc-ramfs-", async (dir) => {
    const ramfs = `${dir}/ramfs`;
    await Deno.mkdir(ramfs);
    await run("mount", ["-t", "ramfs", "ramfs", ramfs]);
    try {
      const disk = `${ramfs}/ovl.qcow2`;
      await createOverlay(base, disk);
      assert.equal(await diskCacheMode(disk), "writeback");
      assert.equal(await diskCacheMode(base), "none");
      assert.equal(await diskCacheMode(`${ramfs}/missing.qcow2`), "none");

      const driver = new QemuDriver({ stateDir: `${dir}/state`, accel: "tcg" });
      const handle = await driver.start(spec("vm-ramfs", disk));
      assert.equal(
        await driveArg(handle),
        `file=${disk},format=qcow2,if=none,id=disk0,cache=writeback`,
      );
      await waitMarker(handle);
      await driver.stop(handle, { force: true });
    } finally {
      await killQemus(dir);
      await waitFor(
        "the qemus to exit",
        async () => (await qemuPids(dir)).length === 0,
        10_000,
      );
      await run("umount", [ramfs]);
    }
  });
});
