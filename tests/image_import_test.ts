/**
 * `image.import` of a good qcow2, VM disks on the stored image, and
 * `image.delete` (real qemu-img and qemu-io, real etcd, the file store).
 */
import assert from "node:assert/strict";
import { parseConfig } from "../core/config.ts";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { PermanentError } from "../tasks/context.ts";
import { imageDelete } from "../tasks/image_delete.ts";
import { imageImport } from "../tasks/image_import.ts";
import { newTask } from "../tasks/queue.ts";
import { taskTimeoutMs } from "../tasks/stop_options.ts";
import { exists, makeQcow2, tool, withImageEnv } from "./helpers/image_env.ts";

const GiB = 1024 ** 3;

/** Every version of the image document at `key`, oldest first (etcd's history). */
async function history(store: Store, key: string): Promise<Image[]> {
  const out: Image[] = [];
  let revision: string | undefined;
  while (true) {
    const r = await store.client.kv.range({ key: store.full(key), revision });
    const kv = r.kvs[0];
    if (!kv) return out;
    out.unshift(Image.parse(JSON.parse(kv.value.toString())));
    if (kv.version === "1") return out;
    revision = String(BigInt(kv.mod_revision) - 1n);
  }
}

Deno.test("image.import stores a good qcow2 read-only: state ready, sha256 as sha256sum, progress to 100", async () => {
  await withImageEnv(async (env) => {
    const src = await makeQcow2(`${env.upload}/good.qcow2`, "1G", 0x5a);
    const want = (await tool("sha256sum", src)).split(" ")[0];
    const size = (await Deno.stat(src)).size;
    const img = await env.importFile("good.qcow2", "deb");
    assert.equal(img.state, "ready", `${img.reason}`);
    assert.equal(img.sha256, want);
    assert.equal(img.format, "qcow2");
    assert.equal(img.store, "file");
    assert.equal(img.virtualSize, GiB);
    assert.equal(img.storedSize, size);
    assert.equal(img.progress, undefined);
    assert.equal(img.reason, undefined);
    assert.match(img.storedAs ?? "", /^alice\/deb-t-/);
    const stored = env.store.imagePath(img.storedAs!);
    assert.deepEqual(await env.storeFiles(), [`images/${img.storedAs}.qcow2`]);
    assert.equal((await Deno.stat(stored)).mode! & 0o777, 0o444);
    assert.equal((await tool("sha256sum", stored)).split(" ")[0], want);
    assert.equal(await exists(src), false, "the upload is removed");
  });
});

Deno.test("image.import writes progress into the image document and the task while it copies", async () => {
  await withImageEnv(async (env) => {
    // 40 MiB of data: ten 4 MiB chunks, so several steps of 5 %.
    const src = await makeQcow2(`${env.upload}/p.qcow2`, "1G");
    await tool("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 40M", src);
    const ref = "alice/p";
    const now = new Date().toISOString();
    await env.bench.store.txn().put(keys.image(ref), {
      name: "p",
      owner: "alice",
      public: false,
      state: "importing",
      source: { kind: "upload" },
      createdAt: now,
      updatedAt: now,
    }).commit();
    const { progress } = await env.runTask(imageImport, "image.import", {
      image: ref,
      file: src,
    });
    assert.ok(progress.length >= 3, `task progress: ${progress}`);
    assert.equal(progress.at(-1), "importing 100%");
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) =>
        parseInt(a.slice(10)) - parseInt(b.slice(10))
      ),
    );
    const docs = await history(env.bench.store, keys.image(ref));
    assert.deepEqual(docs.map((d) => d.state).slice(-2), [
      "importing",
      "ready",
    ]);
    const seen = docs.map((d) => d.progress).filter((p) => p !== undefined);
    assert.ok(seen.length >= 3, `image progress: ${seen}`);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
    assert.equal(seen.at(-1), 100);
    assert.equal(docs.at(-1)!.progress, undefined);
  });
});

Deno.test("image.import skips an image deleted before it ran and leaves nothing", async () => {
  await withImageEnv(async (env) => {
    const src = await makeQcow2(`${env.upload}/gone.qcow2`);
    const { result } = await env.runTask(imageImport, "image.import", {
      image: "alice/gone",
      file: src,
    });
    assert.match(JSON.stringify(result), /skipped/);
    assert.deepEqual(await env.storeFiles(), []);
    assert.equal(await exists(src), false);
  });
});

Deno.test("createDisk() makes two disks of one image: writes into one are not seen in the other nor in the image", async () => {
  await withImageEnv(async (env) => {
    await makeQcow2(`${env.upload}/base.qcow2`, "64M", 0x5a);
    const img = await env.importFile("base.qcow2", "base");
    assert.equal(img.state, "ready", `${img.reason}`);
    const a = await env.store.createDisk("vm-a", img.storedAs!);
    const b = await env.store.createDisk("vm-b", img.storedAs!, 1);
    assert.equal(a, env.store.diskPath("vm-a"));
    const info = JSON.parse(
      await tool("qemu-img", "info", "-f", "qcow2", "--output=json", b),
    );
    assert.equal(info["virtual-size"], GiB);
    assert.equal(info["backing-filename-format"], "qcow2");
    assert.equal(
      info["full-backing-filename"],
      env.store.imagePath(img.storedAs!),
    );
    await tool("qemu-io", "-f", "qcow2", "-c", "write -P 0xaa 0 64k", a);
    await tool("qemu-io", "-f", "qcow2", "-c", "read -P 0xaa 0 64k", a);
    await tool("qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 0 64k", b);
    const image = env.store.imagePath(img.storedAs!);
    await tool(
      "qemu-io",
      "-r",
      "-f",
      "qcow2",
      "-c",
      "read -P 0x5a 0 64k",
      image,
    );
    assert.equal((await tool("sha256sum", image)).split(" ")[0], img.sha256);
    // A rerun keeps the disk (and what was written into it).
    assert.equal(await env.store.createDisk("vm-a", img.storedAs!), a);
    await tool("qemu-io", "-f", "qcow2", "-c", "read -P 0xaa 0 64k", a);
    await env.store.removeDisk("vm-a");
    await env.store.removeDisk("vm-a");
    assert.equal(await exists(a), false);
  });
});

Deno.test("createDisk() refuses a disk smaller than its image, naming both sizes", async () => {
  await withImageEnv(async (env) => {
    await makeQcow2(`${env.upload}/two.qcow2`, "2G");
    const img = await env.importFile("two.qcow2", "two");
    await assert.rejects(
      env.store.createDisk("vm-s", img.storedAs!, 1),
      (err: Error) =>
        err instanceof PermanentError &&
        /1 GiB is smaller than its image \(2\.00 GiB\)/.test(err.message),
    );
    assert.equal(await exists(env.store.diskPath("vm-s")), false);
  });
});

Deno.test("image.delete removes the stored image and is idempotent", async () => {
  await withImageEnv(async (env) => {
    await makeQcow2(`${env.upload}/del.qcow2`);
    const img = await env.importFile("del.qcow2", "del");
    const payload = { store: "file", storedAs: img.storedAs! };
    await env.runTask(imageDelete, "image.delete", payload);
    assert.deepEqual(await env.storeFiles(), []);
    const again = await env.runTask(imageDelete, "image.delete", payload);
    assert.deepEqual(again.result, { removed: img.storedAs, store: "file" });
  });
});

Deno.test("image.delete of another store's image fails permanently with the reason", async () => {
  await withImageEnv(async (env) => {
    const ctx = await env.bench.context(env.worker, "image.delete", {
      store: "rbd",
      storedAs: "alice/x-1",
    });
    await assert.rejects(
      imageDelete({ ...ctx, imageStore: env.store }),
      /in the rbd store, this worker has the file store/,
    );
    const t = await env.bench.store.get(keys.task(ctx.task.id), Task);
    assert.equal(t?.value.state, "running");
  });
});

Deno.test("taskTimeoutMs() gives image.import the time to copy images.maxUploadBytes at 10 MiB/s", () => {
  const config = parseConfig(
    { images: { maxUploadBytes: 20 * GiB } },
    () => undefined,
  );
  const task = newTask({ kind: "image.import", target: "any", payload: {} });
  assert.equal(taskTimeoutMs(task, config), (2048 + 30) * 1000);
  const small = parseConfig(
    { images: { maxUploadBytes: 1024 } },
    () => undefined,
  );
  assert.equal(taskTimeoutMs(task, small), small.tasks.taskTimeoutMs);
});

Deno.test("image.import on a worker without the configured store records the image failed, naming it", async () => {
  await withImageEnv(async (env) => {
    const src = await makeQcow2(`${env.upload}/n.qcow2`);
    const now = new Date().toISOString();
    const doc: Image = {
      name: "n",
      owner: "alice",
      public: false,
      state: "importing",
      source: { kind: "file", file: "n.qcow2" },
      createdAt: now,
      updatedAt: now,
    };
    await env.bench.store.txn().put(keys.image("alice/n"), doc).commit();
    const ctx = await env.bench.context(env.worker, "image.import", {
      image: "alice/n",
      file: src,
    });
    const out = await imageImport({ ...ctx, config: env.config });
    assert.ok((await out.txn!.commit()).ok);
    const img = (await env.bench.store.get(keys.image("alice/n"), Image))!;
    assert.equal(img.value.state, "failed");
    assert.equal(img.value.reason, 'no image store "file" on h1');
    assert.equal(await exists(src), false);
  });
});

Deno.test("image.import run again after its completion lost the compare records the same import from the store", async () => {
  await withImageEnv(async (env) => {
    const src = await makeQcow2(`${env.upload}/r.qcow2`, "64M", 0x5a);
    const want = (await tool("sha256sum", src)).split(" ")[0];
    const now = new Date().toISOString();
    const key = keys.image("alice/r");
    const doc: Image = {
      name: "r",
      owner: "alice",
      public: false,
      state: "importing",
      source: { kind: "upload" },
      createdAt: now,
      updatedAt: now,
    };
    await env.bench.store.txn().put(key, doc).commit();
    const base = await env.bench.context(env.worker, "image.import", {
      image: "alice/r",
      file: src,
    });
    const ctx = { ...base, config: env.config, imageStore: env.store };
    const first = await imageImport(ctx);
    const cur = (await env.bench.store.get(key, Image))!;
    await env.bench.store.txn().put(key, { ...cur.value, public: true })
      .commit();
    assert.equal((await first.txn!.commit()).ok, false);
    // A new claim of the task (a copy: nothing kept from the first run)
    // finds the image stored and describes it from the store.
    const again = await imageImport({ ...ctx, task: { ...ctx.task } });
    assert.ok((await again.txn!.commit()).ok);
    const img = (await env.bench.store.get(key, Image))!.value;
    assert.equal(img.state, "ready");
    assert.equal(img.public, true);
    assert.equal(img.sha256, want);
    assert.deepEqual(await env.storeFiles(), [`images/${img.storedAs}.qcow2`]);
  });
});
