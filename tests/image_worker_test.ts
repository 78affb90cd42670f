/**
 * A real worker process runs `image.import` and `image.delete` from the
 * queue (target `any`) with the file store its configuration names.
 */
import assert from "node:assert/strict";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import { enqueue, newTask } from "../tasks/queue.ts";
import { startCluster, waitFor } from "./helpers/cluster.ts";
import { exists, makeQcow2 } from "./helpers/image_env.ts";

Deno.test("a worker imports an image with the store of its config and deletes it again", async () => {
  const c = await startCluster({ guest: false });
  try {
    const uploadDir = `${c.dir}/www`;
    const storeDir = `${c.dir}/store`;
    await Deno.mkdir(`${uploadDir}/alice/upload`, { recursive: true });
    const config = `${c.dir}/images.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({ images: { uploadDir, fileStoreDir: storeDir } }),
    );
    await c.addWorker({ name: "h1", env: { UCLOUD_CONFIG: config } });
    const file = await makeQcow2(
      `${uploadDir}/alice/upload/w.qcow2`,
      "64M",
      0x5a,
    );
    const now = new Date().toISOString();
    const doc: Image = {
      name: "w",
      owner: "alice",
      public: false,
      state: "importing",
      source: { kind: "file", file: "w.qcow2" },
      createdAt: now,
      updatedAt: now,
    };
    const task = newTask({
      kind: "image.import",
      target: "any",
      payload: { image: "alice/w", file },
    });
    await enqueue(c.store.txn().put(keys.image("alice/w"), doc), task).commit();
    const img = await waitFor("the image ready", async () => {
      const d = await c.store.get(keys.image("alice/w"), Image);
      return d?.value.state === "importing" ? null : d?.value;
    }, 90_000);
    assert.equal(img.state, "ready", img.reason ?? "");
    const stored = `${storeDir}/images/${img.storedAs}.qcow2`;
    assert.ok(await exists(stored), stored);
    assert.equal(await exists(file), false);

    const del = newTask({
      kind: "image.delete",
      target: "any",
      payload: { store: "file", storedAs: img.storedAs },
    });
    await enqueue(c.store.txn(), del).commit();
    const done = await waitFor("image.delete done", async () => {
      const t = await c.store.get(keys.task(del.id), Task);
      return ["succeeded", "failed"].includes(t?.value.state ?? "") && t;
    }, 60_000);
    assert.equal(done.value.state, "succeeded", `${done.value.error}`);
    assert.equal(await exists(stored), false);
  } catch (err) {
    await c.printLogs();
    throw err;
  } finally {
    await c.stop();
  }
});

Deno.test("an image.import whose attempts workers used up by dying marks the image failed, not importing forever", async () => {
  const c = await startCluster({ guest: false });
  try {
    const now = new Date().toISOString();
    const doc: Image = {
      name: "d",
      owner: "alice",
      public: false,
      state: "importing",
      source: { kind: "file", file: "d.qcow2" },
      createdAt: now,
      updatedAt: now,
    };
    const task = newTask({
      kind: "image.import",
      target: "any",
      payload: { image: "alice/d", file: `${c.dir}/d.qcow2` },
    });
    // As left by workers that died running it: running, no claim, every
    // attempt used.
    const died: Task = {
      ...task,
      state: "running",
      attempts: task.maxAttempts,
      error: "worker died",
    };
    await enqueue(c.store.txn().put(keys.image("alice/d"), doc), task)
      .commit();
    await c.store.txn().put(keys.task(task.id), died).commit();
    await c.addWorker({ name: "h1" });
    const img = await waitFor("the image failed", async () => {
      const d = await c.store.get(keys.image("alice/d"), Image);
      return d?.value.state === "importing" ? null : d?.value;
    }, 60_000);
    assert.equal(img.state, "failed");
    assert.match(img.reason ?? "", /^image\.import failed: /);
    const t = (await c.store.get(keys.task(task.id), Task))!.value;
    assert.equal(t.state, "failed");
  } catch (err) {
    await c.printLogs();
    throw err;
  } finally {
    await c.stop();
  }
});
