/**
 * The RBD driver (drivers/images/rbd.ts) on a real one-node Ceph
 * (scripts/ceph_fixture.sh), one cluster for the file: import of a qcow2 as
 * raw, clones that do not see each other's writes, resize, removal, and the
 * storage fence: the exclusive lock alone lets a second live client write,
 * while a block-listed client's writes fail and a new client opens and
 * writes the disk.
 */
import assert from "node:assert/strict";
import {
  cloneDisk,
  DISK_FEATURES,
  imageInfo,
  importQcow2,
  protectSnapshot,
  rbdFilename,
  removeImage,
  resizeImage,
} from "../drivers/images/rbd.ts";
import {
  blocklist,
  fenceImage,
  lockers,
  watchers,
} from "../drivers/images/rbd_fence.ts";
import { run } from "../drivers/runner.ts";
import { noSanitize } from "./helpers/api.ts";
import { ceph, startCeph } from "./helpers/ceph.ts";
import { QemuIo, qemuIo } from "./helpers/qemu_io.ts";

const MiB = 1024 ** 2;
const BASE = { image: "img-1", snapshot: "base" };

function log(what: string, fields: Record<string, unknown>) {
  console.log(JSON.stringify({ test: "ceph_rbd", what, ...fields }));
}

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

Deno.test({
  name: "rbd driver on a one-node Ceph",
  ...noSanitize,
  async fn(t) {
    const ceph1 = await startCeph();
    const tmp = await Deno.makeTempDir({ prefix: "ucloud-rbd-test-" });
    const p = ceph1.pool;
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    try {
      log("started", {
        startMs: ceph1.startMs,
        diskBytes: ceph1.diskBytes,
      });

      await step(
        "startCeph() serves a healthy pool ucloud of size 1 for rbd",
        async () => {
          const health = JSON.parse(await ceph(p, ["health", "-f", "json"]));
          assert.equal(health.status, "HEALTH_OK", JSON.stringify(health));
          const pool = JSON.parse(
            await ceph(p, [
              "osd",
              "pool",
              "get",
              "ucloud",
              "size",
              "-f",
              "json",
            ]),
          );
          assert.equal(pool.size, 1);
          const apps = JSON.parse(
            await ceph(p, ["osd", "pool", "application", "get", "ucloud"]),
          );
          assert.ok("rbd" in apps, JSON.stringify(apps));
        },
      );

      const qcow2 = `${tmp}/disk.qcow2`;
      await step(
        "importQcow2() stores a qcow2 as a raw image of the same content",
        async () => {
          await run("qemu-img", ["create", "-f", "qcow2", qcow2, "64M"]);
          await qemuIo("qcow2", qcow2, [
            "write -P 0x11 0 1M",
            "write -P 0x22 32M 64k",
          ]);
          const t0 = Date.now();
          await importQcow2(p, qcow2, BASE.image);
          log("imported", { ms: Date.now() - t0, virtualBytes: 64 * MiB });
          const info = await imageInfo(p, BASE.image);
          assert.equal(info?.size, 64 * MiB);
          assert.equal(info?.parent, undefined);
          await qemuIo("raw", rbdFilename(p, BASE.image), [
            "read -P 0x11 0 1M",
            "read -P 0x00 1M 31M",
            "read -P 0x22 32M 64k",
          ]);
          await assert.rejects(importQcow2(p, qcow2, BASE.image), /it exists/);
          assert.ok(await imageInfo(p, BASE.image), "the existing image stays");
        },
      );

      await step(
        "importQcow2() of a file that is not qcow2 fails and leaves no image",
        async () => {
          const raw = `${tmp}/raw.img`;
          await Deno.writeFile(raw, new Uint8Array(MiB));
          await assert.rejects(importQcow2(p, raw, "img-bad"), /qemu-img/);
          assert.equal(await imageInfo(p, "img-bad"), null);
        },
      );

      await step(
        "cloneDisk() makes two disks that do not see each other's writes",
        async () => {
          await protectSnapshot(p, BASE.image, BASE.snapshot);
          await protectSnapshot(p, BASE.image, BASE.snapshot);
          await cloneDisk(p, BASE, "vm-a", 128 * MiB);
          await cloneDisk(p, BASE, "vm-b");
          await cloneDisk(p, BASE, "vm-a", 128 * MiB);
          const a = await imageInfo(p, "vm-a");
          assert.deepEqual(a?.parent, BASE);
          assert.equal(a?.size, 128 * MiB);
          assert.deepEqual(a?.features, DISK_FEATURES);
          assert.equal((await imageInfo(p, "vm-b"))?.size, 64 * MiB);
          await assert.rejects(
            cloneDisk(p, BASE, BASE.image),
            /is not a clone of img-1@base/,
          );

          await qemuIo("raw", rbdFilename(p, "vm-a"), [
            "write -P 0x33 0 1M",
            "write -P 0x44 100M 1M",
          ]);
          await qemuIo("raw", rbdFilename(p, "vm-a"), [
            "read -P 0x33 0 1M",
            "read -P 0x22 32M 64k",
            "read -P 0x44 100M 1M",
          ]);
          await qemuIo("raw", rbdFilename(p, "vm-b"), [
            "read -P 0x11 0 1M",
            "read -P 0x22 32M 64k",
          ]);
          await qemuIo("raw", rbdFilename(p, BASE.image), [
            "read -P 0x11 0 1M",
          ]);
        },
      );

      await step(
        "resizeImage() grows a disk and refuses to shrink it",
        async () => {
          await resizeImage(p, "vm-b", 96 * MiB + 4096);
          assert.equal((await imageInfo(p, "vm-b"))?.size, 96 * MiB + 4096);
          await qemuIo("raw", rbdFilename(p, "vm-b"), [
            "write -P 0x55 96M 4k",
            "read -P 0x55 96M 4k",
            "read -P 0x11 0 1M",
          ]);
          await assert.rejects(resizeImage(p, "vm-b", 32 * MiB), /shrink/);
          assert.equal((await imageInfo(p, "vm-b"))?.size, 96 * MiB + 4096);
        },
      );

      await step(
        "without a blocklist a second client takes the exclusive lock from a live one",
        async () => {
          await cloneDisk(p, BASE, "vm-g");
          const file = rbdFilename(p, "vm-g");
          const old = await QemuIo.open("raw", file);
          try {
            assert.match(await old.command("write -P 0x61 0 4k"), /wrote 4096/);
            await qemuIo("raw", file, ["write -P 0x62 0 4k"]);
            assert.match(await old.command("write -P 0x63 0 4k"), /wrote 4096/);
            await qemuIo("raw", file, ["read -P 0x63 0 4k"]);
          } finally {
            await old.close();
          }
        },
      );

      await step(
        "a block-listed client's writes fail while a new client opens and writes the disk",
        async () => {
          await cloneDisk(p, BASE, "vm-f");
          const file = rbdFilename(p, "vm-f");
          const old = await QemuIo.open("raw", file);
          try {
            assert.match(await old.command("write -P 0x66 0 4k"), /wrote 4096/);
            const [owner] = await lockers(p, "vm-f");
            assert.match(owner.id, /^auto /, "the exclusive lock");
            const open = await watchers(p, "vm-f");
            assert.deepEqual(open.map((w) => w.address), [owner.address]);

            // The old client keeps writing while it is fenced.
            const errors: string[] = [];
            let lastOk = 0;
            const writer = (async () => {
              for (let i = 1; i < 10_000; i++) {
                const out = await old.command(`write -P 0x77 ${i * 4096} 4k`);
                if (!/wrote 4096/.test(out)) {
                  errors.push(out);
                  return Date.now();
                }
                lastOk = Date.now();
              }
              throw new Error("the fenced client never failed a write");
            })();
            const t0 = Date.now();
            const fenced = await fenceImage(p, "vm-f");
            const listed = Date.now();
            const failedAt = await writer;
            log("fenced", {
              addresses: fenced,
              blocklistCmdMs: listed - t0,
              firstFailureMs: failedAt - t0,
              lastOkWriteMs: lastOk - t0,
              error: errors[0],
            });
            assert.deepEqual(fenced, [owner.address]);
            assert.match(
              errors[0],
              /Cannot send after transport endpoint shutdown/,
            );
            assert.match(
              await old.command("write -P 0x88 0 4k"),
              /write failed: Cannot send after transport endpoint shutdown/,
            );
            assert.deepEqual(await watchers(p, "vm-f"), []);

            const t1 = Date.now();
            await qemuIo("raw", file, [
              "read -P 0x66 0 4k",
              "write -P 0x99 0 4k",
              "read -P 0x99 0 4k",
            ]);
            log("new client wrote", { ms: Date.now() - t1 });
          } finally {
            await old.close();
          }
          await assert.rejects(
            blocklist(p, "127.0.0.1 0/1"),
            /not a Ceph client address/,
          );
        },
      );

      await step(
        "removeImage() refuses an image with clones, then removes disks and images idempotently",
        async () => {
          await assert.rejects(
            removeImage(p, BASE.image),
            /snapshot base has clones: .*ucloud\/vm-a/,
          );
          assert.ok(await imageInfo(p, BASE.image));
          for (const disk of ["vm-a", "vm-b", "vm-f", "vm-g"]) {
            await removeImage(p, disk);
          }
          await removeImage(p, BASE.image);
          await removeImage(p, BASE.image);
          await removeImage(p, "never-was");
          assert.deepEqual(await rbdLs(p.conf), []);
          log("disk", { bytes: await ceph1.diskUse() });
        },
      );
    } finally {
      await ceph1.stop();
      await Deno.remove(tmp, { recursive: true });
    }
    const left = await run("pgrep", ["-af", `ceph-.* -c ${ceph1.dir}/`])
      .catch(() => ({ stdout: "" }));
    assert.equal(left.stdout, "", "no daemon of the cluster is left");
  },
});
