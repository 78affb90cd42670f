/**
 * The RBD image store (drivers/images/rbd_store.ts) on a real one-node Ceph
 * (scripts/ceph_fixture.sh), one cluster for the file: an import runs the
 * file store's qcow2 rules and stores raw with a protected snapshot; a VM
 * disk is a clone at the asked size, kept when created again; removals are
 * idempotent; the disk guest imported into RBD boots in qemu under TCG
 * through librbd (`format=raw`).
 */
import assert from "node:assert/strict";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import { imageInfo } from "../drivers/images/rbd.ts";
import { RbdStore } from "../drivers/images/rbd_store.ts";
import { run } from "../drivers/runner.ts";
import { ImageRejected } from "../tasks/image_store.ts";
import { noSanitize } from "./helpers/api.ts";
import { startCeph } from "./helpers/ceph.ts";
import { killQemus, qemuPids, waitFor } from "./helpers/cluster.ts";
import { ensureDiskGuest } from "./helpers/disk_guest.ts";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const MARKER = "UCLOUD-GUEST-READY";
/** TCG boots of BIOS, extlinux and the kernel on a loaded 2-core machine. */
const BOOT_MS = 240_000;

async function rbdLs(conf: string): Promise<string[]> {
  const { stdout } = await run("rbd", [
    "--conf",
    conf,
    "ls",
    "--format",
    "json",
    "ucloud",
  ]);
  return JSON.parse(stdout);
}

async function sha256(path: string): Promise<string> {
  return (await run("sha256sum", [path])).stdout.split(" ")[0];
}

Deno.test({
  name: "RbdStore on a one-node Ceph",
  ...noSanitize,
  async fn(t) {
    const ceph = await startCeph();
    const tmp = await Deno.makeTempDir({ prefix: "uc-rbd-store-" });
    const p = ceph.pool;
    const store = new RbdStore({
      pool: p,
      tmpDir: `${tmp}/import`,
      maxVirtualBytes: 4 * GiB,
      maxSourceBytes: GiB,
    });
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    try {
      const src = `${tmp}/up.qcow2`;
      await step(
        "importImage() stores a good qcow2 as raw with a protected snapshot and the upload's sha256",
        async () => {
          await run("qemu-img", ["create", "-q", "-f", "qcow2", src, "64M"]);
          await run("qemu-io", [
            "-f",
            "qcow2",
            "-c",
            "write -P 0x5a 0 4M",
            src,
          ]);
          const want = await sha256(src);
          const progress: number[] = [];
          const got = await store.importImage(
            src,
            "alice/small-t-1",
            (n) => Promise.resolve(void progress.push(n)),
          );
          assert.equal(got.format, "raw");
          assert.equal(got.virtualSize, 64 * MiB);
          assert.equal(got.sha256, want);
          assert.ok(got.storedSize >= 4 * MiB, `storedSize ${got.storedSize}`);
          assert.ok(got.storedSize < 64 * MiB, "stored sparse");
          assert.equal(progress.at(-1), 100);
          assert.ok(progress.every((n, i) => i === 0 || n >= progress[i - 1]));
          const name = store.imageName("alice/small-t-1");
          assert.match(name, /^img\.alice\.small-t-1\.[0-9a-f]{12}$/);
          const { stdout } = await run("rbd", [
            "--conf",
            p.conf,
            "snap",
            "ls",
            "--format",
            "json",
            `ucloud/${name}`,
          ]);
          const snaps = JSON.parse(stdout);
          assert.deepEqual(
            snaps.map((s: { name: string; protected: string }) => [
              s.name,
              s.protected,
            ]),
            [["base", "true"]],
          );
          await run("qemu-io", [
            "-f",
            "raw",
            "-c",
            "read -P 0x5a 0 4M",
            "-c",
            "read -P 0 4M 4M",
            `rbd:ucloud/${name}:conf=${p.conf}`,
          ]);
          assert.deepEqual(
            await store.importImage(src, "alice/small-t-1", async () => {}),
            got,
            "a rerun describes the stored image",
          );
          assert.deepEqual(
            await Array.fromAsync(Deno.readDir(`${tmp}/import`)),
            [],
            "no copy is left in the temp dir",
          );
        },
      );

      await step(
        "importImage() refuses raw data named .qcow2 and a backing file, leaving nothing in the pool",
        async () => {
          const raw = `${tmp}/raw.qcow2`;
          await Deno.writeFile(raw, new Uint8Array(MiB).fill(7));
          await assert.rejects(
            store.importImage(raw, "alice/raw-t-2", async () => {}),
            (err) => err instanceof ImageRejected && /qcow2/.test(err.message),
          );
          const backed = `${tmp}/backed.qcow2`;
          await run("qemu-img", [
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            "/etc/passwd",
            backed,
            "64M",
          ]);
          await assert.rejects(
            store.importImage(backed, "alice/bk-t-3", async () => {}),
            (err) =>
              err instanceof ImageRejected && /backing file/.test(err.message),
          );
          assert.deepEqual(await rbdLs(p.conf), [
            store.imageName("alice/small-t-1"),
          ]);
        },
      );

      await step(
        "createDisk() clones at the asked size, keeps an existing disk, refuses a smaller one",
        async () => {
          const disk = await store.createDisk("vm-a", "alice/small-t-1", 1);
          assert.equal(disk, `rbd:ucloud/disk.vm-a:id=admin:conf=${p.conf}`);
          assert.equal(disk, store.diskPath("vm-a"));
          await run("qemu-io", ["-f", "raw", "-c", "write -P 0xaa 0 1M", disk]);
          const info = await imageInfo(p, "disk.vm-a");
          assert.equal(info?.size, GiB);
          assert.ok(info?.features.includes("exclusive-lock"));
          assert.equal(info?.parent?.snapshot, "base");
          assert.equal(
            await store.createDisk("vm-a", "alice/small-t-1", 1),
            disk,
          );
          await run("qemu-io", ["-f", "raw", "-c", "read -P 0xaa 0 1M", disk]);
          await assert.rejects(
            store.createDisk("vm-b", "alice/small-t-1", 0.01),
            /smaller than its image/,
          );
          await assert.rejects(
            store.createDisk("vm-b", "alice/none-t-9", 1),
            /is not in rbd pool ucloud/,
          );
        },
      );

      await step(
        "removeDisk() and removeImage() are idempotent; an image with a disk is refused",
        async () => {
          await assert.rejects(
            store.removeImage("alice/small-t-1"),
            /has clones: ucloud\/disk\.vm-a/,
          );
          for (let i = 0; i < 2; i++) await store.removeDisk("vm-a");
          for (let i = 0; i < 2; i++) {
            await store.removeImage("alice/small-t-1");
          }
          assert.deepEqual(await rbdLs(p.conf), []);
        },
      );

      await step(
        "a VM disk cloned from the disk guest imported into RBD boots under TCG through librbd",
        async () => {
          const upload = `${tmp}/guest.qcow2`;
          await Deno.copyFile(await ensureDiskGuest(), upload);
          const img = await store.importImage(
            upload,
            "alice/guest-t-4",
            async () => {},
          );
          assert.equal(img.format, "raw");
          const disk = await store.createDisk("vm-rbd-boot", "alice/guest-t-4");
          const driver = new QemuDriver({
            stateDir: `${tmp}/state`,
            accel: "tcg",
          });
          const started = Date.now();
          const h = await driver.start({
            id: "vm-rbd-boot",
            name: "vm-rbd-boot",
            cpus: 1,
            memoryMiB: 128,
            boot: { disk, format: store.diskFormat },
          });
          try {
            const args = (await Deno.readTextFile(`/proc/${h.pid}/cmdline`))
              .split("\0");
            assert.equal(
              args[args.indexOf("-drive") + 1],
              `file=${disk},format=raw,if=none,id=disk0,cache=none`,
            );
            await waitFor(
              `${MARKER} on ${h.serial}`,
              async () =>
                (await Deno.readTextFile(h.serial).catch(() => "")).includes(
                  MARKER,
                ),
              BOOT_MS,
              250,
            );
            console.log(JSON.stringify({
              test: "rbd_store",
              what: "rbd disk guest ready",
              ms: Date.now() - started,
            }));
          } finally {
            await driver.stop(h, { force: true });
          }
          await store.removeDisk("vm-rbd-boot");
          await store.removeImage("alice/guest-t-4");
          assert.deepEqual(await rbdLs(p.conf), []);
        },
      );
    } finally {
      await killQemus(tmp);
      await waitFor(
        "the qemus to exit",
        async () => (await qemuPids(tmp)).length === 0,
        10_000,
      );
      await ceph.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
