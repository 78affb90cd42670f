/**
 * `image.import` refuses what could make qemu read a host file, or what it
 * cannot trust (real qemu-img, real etcd): each file ends with the image
 * `failed` and a clear reason, nothing in the store (no image, no temp
 * copy) and the uploaded file removed.
 */
import assert from "node:assert/strict";
import {
  exists,
  type ImageEnv,
  makeQcow2,
  patch,
  tool,
  withImageEnv,
} from "./helpers/image_env.ts";
import { imageImport } from "../tasks/image_import.ts";

async function expectRejected(
  env: ImageEnv,
  file: string,
  reason: RegExp,
): Promise<string> {
  const img = await env.importFile(file);
  assert.equal(img.state, "failed", `state of ${file}`);
  assert.match(img.reason ?? "", reason);
  assert.equal(img.storedAs, undefined);
  assert.equal(img.sha256, undefined);
  assert.deepEqual(await env.storeFiles(), [], "files left in the store");
  assert.equal(await exists(`${env.upload}/${file}`), false, "upload left");
  return img.reason!;
}

Deno.test("image.import refuses raw data named .qcow2 as not qcow2", async () => {
  await withImageEnv(async (env) => {
    const data = crypto.getRandomValues(new Uint8Array(64 * 1024));
    await Deno.writeFile(`${env.upload}/raw.qcow2`, data);
    await expectRejected(env, "raw.qcow2", /^not a qcow2 image: .*QFI\\xfb/);
  });
});

Deno.test("image.import refuses a qcow2 whose backing file is a host file (/etc/passwd as raw)", async () => {
  await withImageEnv(async (env) => {
    const f = `${env.upload}/back.qcow2`;
    await tool(
      "qemu-img",
      "create",
      "-q",
      "-f",
      "qcow2",
      "-F",
      "raw",
      "-b",
      "/etc/passwd",
      f,
    );
    await expectRejected(
      env,
      "back.qcow2",
      /backing file is refused \(it names "\/etc\/passwd"\)/,
    );
  });
});

Deno.test("image.import refuses a qcow2 whose external data file is a host file", async () => {
  await withImageEnv(async (env) => {
    const secret = `${env.host}/secret.raw`;
    const f = `${env.upload}/data.qcow2`;
    await tool(
      "qemu-img",
      "create",
      "-q",
      "-f",
      "qcow2",
      "-o",
      `data_file=${secret},data_file_raw=on`,
      f,
      "1M",
    );
    await Deno.writeTextFile(secret, "host secret\n");
    const reason = await expectRejected(
      env,
      "data.qcow2",
      /external data file is refused/,
    );
    assert.ok(reason.includes(secret), reason);
    assert.equal(await Deno.readTextFile(secret), "host secret\n");
  });
});

Deno.test("image.import refuses an encrypted qcow2 (LUKS)", async () => {
  await withImageEnv(async (env) => {
    await tool(
      "qemu-img",
      "create",
      "-q",
      "-f",
      "qcow2",
      "--object",
      "secret,id=sec0,data=x",
      "-o",
      "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
      `${env.upload}/enc.qcow2`,
      "1M",
    );
    await expectRejected(
      env,
      "enc.qcow2",
      /^an encrypted qcow2 image is refused \(encryption: LUKS\)/,
    );
  });
});

Deno.test("image.import refuses a truncated qcow2 as corrupt", async () => {
  await withImageEnv(async (env) => {
    const f = await makeQcow2(`${env.upload}/cut.qcow2`, "64M", 0x5a);
    const { size } = await Deno.stat(f);
    await Deno.truncate(f, size - 70_000);
    await expectRejected(
      env,
      "cut.qcow2",
      /^the qcow2 image is corrupt \(qemu-img check: .*exceeding the end of the file/,
    );
  });
});

Deno.test("image.import refuses a qcow2 whose refcounts contradict its tables as corrupt", async () => {
  await withImageEnv(async (env) => {
    const f = await makeQcow2(`${env.upload}/bad.qcow2`, "64M", 0x5a);
    // The first refcount block (entry 0 of the refcount table): clusters 0-3 count 0.
    const head = new DataView((await Deno.readFile(f)).buffer);
    const table = Number(head.getBigUint64(48));
    const block = Number(head.getBigUint64(table));
    await patch(f, block, new Uint8Array(8));
    await expectRejected(
      env,
      "bad.qcow2",
      /^the qcow2 image is corrupt \(qemu-img check: ERROR cluster 0 refcount=0 reference=1/,
    );
  });
});

Deno.test("image.import refuses a qcow2 whose virtual size is over images.maxVirtualBytes", async () => {
  await withImageEnv(async (env) => {
    await makeQcow2(`${env.upload}/big.qcow2`, "2G");
    await expectRejected(
      env,
      "big.qcow2",
      /^the virtual size 2147483648 bytes \(2\.0 GiB\) is over the limit of 1073741824 bytes \(images\.maxVirtualBytes\)/,
    );
  }, { maxVirtualBytes: 1024 ** 3 });
});

Deno.test("image.import refuses a qcow2 with an unknown incompatible feature bit in its header", async () => {
  await withImageEnv(async (env) => {
    const f = await makeQcow2(`${env.upload}/feat.qcow2`);
    // incompatible_features is the big-endian u64 at 72: bit 5 is in byte 79.
    await patch(f, 79, Uint8Array.of(0x20));
    await expectRejected(
      env,
      "feat.qcow2",
      /^the qcow2 image uses unknown incompatible features \(header bits 5\)/,
    );
  });
});

Deno.test("image.import refuses a symlink in the upload directory and leaves its target alone", async () => {
  await withImageEnv(async (env) => {
    const target = await makeQcow2(`${env.host}/other.qcow2`);
    await Deno.symlink(target, `${env.upload}/link.qcow2`);
    await expectRejected(
      env,
      "link.qcow2",
      /^the file is a symbolic link \(refused\)/,
    );
    assert.ok(await exists(target));
  });
});

Deno.test("image.import refuses a file over images.maxUploadBytes", async () => {
  await withImageEnv(async (env) => {
    await makeQcow2(`${env.upload}/fat.qcow2`, "64M", 0x5a);
    await expectRejected(
      env,
      "fat.qcow2",
      /^the file has \d+ bytes, over the limit of 100000 \(images\.maxUploadBytes\)/,
    );
  }, { maxUploadBytes: 100_000 });
});

Deno.test("image.import refuses a file outside the owner's upload directories and leaves it alone", async () => {
  await withImageEnv(async (env) => {
    const bob = `${env.config.images.uploadDir}/bob/upload`;
    await Deno.mkdir(bob, { recursive: true });
    const file = await makeQcow2(`${bob}/his.qcow2`);
    await env.bench.store.txn().put("image/alice/img", {
      name: "img",
      owner: "alice",
      public: false,
      state: "importing",
      source: { kind: "upload" },
      createdAt: "",
      updatedAt: "",
    }).commit();
    const { result } = await env.runTask(imageImport, "image.import", {
      image: "alice/img",
      file,
    });
    assert.match(
      (result as { reason: string }).reason,
      /^the file .*\/bob\/upload\/his\.qcow2 is not in the owner's upload directory$/,
    );
    assert.deepEqual(await env.storeFiles(), []);
    assert.ok(await exists(file), "another user's file is kept");
  });
});
