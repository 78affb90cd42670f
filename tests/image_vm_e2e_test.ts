/**
 * Images end to end, as a user does it: the disk-booting test guest
 * uploaded through the HTTP API, imported by a worker into the file store,
 * two VMs created from it that boot under TCG from their own disks, then
 * the image refused for delete while they exist, and everything removed.
 * Real etcd, worker, qemu-img and qemu.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { ConfigSchema } from "../core/config.ts";
import { ImagesConfig } from "../core/config_images.ts";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import { headerAuth } from "./helpers/api.ts";
import { qemuPids, waitFor, withCluster } from "./helpers/cluster.ts";
import { ensureDiskGuest } from "./helpers/disk_guest.ts";
import { exists } from "./helpers/image_env.ts";

const ALICE = { "x-user": "alice" };

Deno.test("a user uploads a bootable qcow2, two VMs boot from their own disks on it, and deleting them frees the image", async () => {
  const base = await ensureDiskGuest();
  await withCluster(async (c) => {
    const images = ImagesConfig.parse({
      uploadDir: `${c.dir}/www`,
      fileStoreDir: `${c.dir}/store`,
    });
    const configFile = `${c.dir}/images.json`;
    await Deno.writeTextFile(configFile, JSON.stringify({ images }));
    const w = await c.addWorker({
      name: "h1",
      env: { UCLOUD_CONFIG: configFile },
    });
    const app = createApp({
      store: c.store,
      auth: headerAuth,
      config: { tasks: ConfigSchema.shape.tasks.parse(undefined), images },
    });
    const json = { ...ALICE, "content-type": "application/json" };
    let r = await app.request("/v1/images", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ name: "tinydisk" }),
    });
    assert.equal(r.status, 201, await r.text());
    const size = (await Deno.stat(base)).size;
    const file = await Deno.open(base);
    r = await app.request("/v1/images/tinydisk/upload", {
      method: "PUT",
      headers: {
        ...ALICE,
        "content-type": "application/octet-stream",
        "content-range": `bytes 0-${size - 1}/${size}`,
      },
      body: file.readable,
    });
    assert.equal(r.status, 200, await r.text());
    const img = await waitFor("image ready", async () => {
      const d = (await c.store.get(keys.image("alice/tinydisk"), Image))?.value;
      return d && d.state !== "uploading" && d.state !== "importing" && d;
    }, 120_000);
    assert.equal(img.state, "ready", img.reason ?? "");

    const ids: string[] = [];
    for (const name of ["da", "db"]) {
      r = await app.request("/v1/vms", {
        method: "POST",
        headers: json,
        body: JSON.stringify({
          name,
          cpus: 1,
          memory: 128,
          image: "tinydisk",
          disk: 1,
        }),
      });
      const body = await r.json();
      assert.equal(r.status, 201, JSON.stringify(body));
      ids.push(body.vm.id);
    }
    for (const id of ids) {
      const vm = await waitFor(`${id} running`, async () => {
        const v = (await c.store.get(keys.vm(id), Vm))?.value;
        return v?.status.phase === "running" && v;
      }, 120_000);
      assert.equal(vm.imageRef, "alice/tinydisk");
      const [pid] = await qemuPids(`/vms/${id}/`);
      const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`);
      assert.ok(
        cmd.includes(
          `file=${images.fileStoreDir}/disks/${id}.qcow2,format=qcow2`,
        ),
        cmd.replaceAll("\0", " "),
      );
      const serial = (vm.status.handle as { serial: string }).serial;
      await waitFor(`${id} booted from its disk`, async () => {
        const log = await Deno.readTextFile(serial).catch(() => "");
        return log.includes("UCLOUD-GUEST-READY");
      }, 180_000);
    }

    r = await app.request("/v1/images/tinydisk", {
      method: "DELETE",
      headers: ALICE,
    });
    assert.equal(r.status, 409);
    assert.match(await r.text(), new RegExp(ids[0]));

    for (const id of ids) {
      r = await app.request(`/v1/vms/${id}`, {
        method: "DELETE",
        headers: ALICE,
      });
      assert.equal(r.status, 202, await r.text());
    }
    for (const id of ids) {
      await waitFor(
        `${id} deleted`,
        async () =>
          !(await c.store.get(keys.vm(id), Vm)) &&
          !(await exists(`${images.fileStoreDir}/disks/${id}.qcow2`)),
        60_000,
      );
    }
    r = await app.request("/v1/images/tinydisk", {
      method: "DELETE",
      headers: ALICE,
    });
    assert.ok(r.status < 300, await r.text());
    await waitFor(
      "stored image removed",
      async () =>
        !(await exists(`${images.fileStoreDir}/images/${img.storedAs}.qcow2`)),
      60_000,
    );
    assert.equal((await qemuPids(w.stateDir)).length, 0);
  });
});
