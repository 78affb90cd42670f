import assert from "node:assert/strict";
import { run } from "../runner.ts";
import { ImageRejected } from "../../tasks/image_store.ts";
import { copySource, withCheckedCopy } from "./source_copy.ts";

const MiB = 1024 * 1024;

/**
 * A file with a qcow2 v3 header (1 GiB virtual) and `bytes` in all, random
 * after the header: copySource checks only the header.
 */
async function source(dir: string, bytes: number): Promise<string> {
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 65536)));
  }
  data.fill(0, 0, 4096);
  const v = new DataView(data.buffer);
  data.set([0x51, 0x46, 0x49, 0xfb]);
  v.setUint32(4, 3);
  v.setUint32(20, 16);
  v.setBigUint64(24, 1n << 30n);
  v.setUint32(96, 4);
  v.setUint32(100, 112);
  const path = `${dir}/src.qcow2`;
  await Deno.writeFile(path, data);
  return path;
}

async function sha256sum(path: string): Promise<string> {
  return (await run("sha256sum", [path])).stdout.split(" ")[0];
}

const limits = { maxBytes: 2 ** 40, maxVirtualBytes: 2 ** 40 };

Deno.test("copySource() copies and hashes exactly the source's bytes over many chunks and an odd tail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uc-copy-" });
  try {
    const src = await source(dir, 41 * MiB + 12345);
    const percents: number[] = [];
    const got = await copySource(src, `${dir}/copy`, {
      ...limits,
      onProgress: (p) => {
        percents.push(p);
        return Promise.resolve();
      },
    });
    const want = await sha256sum(src);
    assert.deepEqual(got, { sha256: want, bytes: 41 * MiB + 12345 });
    assert.equal(await sha256sum(`${dir}/copy`), want);
    assert.equal((await Deno.stat(`${dir}/copy`)).mode! & 0o777, 0o600);
    assert.equal(percents.at(-1), 100);
    assert.deepEqual(percents, [...percents].sort((a, b) => a - b));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("copySource() refuses a source that grows over maxBytes while copied and copies no more than maxBytes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uc-copy-" });
  try {
    const src = await source(dir, 20 * MiB);
    let grown = false;
    await assert.rejects(
      copySource(src, `${dir}/copy`, {
        maxBytes: 24 * MiB,
        maxVirtualBytes: 2 ** 40,
        onProgress: async () => {
          if (grown) return;
          grown = true;
          await Deno.writeFile(src, new Uint8Array(16 * MiB), {
            append: true,
          });
        },
      }),
      (err: Error) =>
        err instanceof ImageRejected &&
        /grew over the limit of 25165824 bytes/.test(err.message),
    );
    assert.ok((await Deno.stat(`${dir}/copy`)).size <= 24 * MiB);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("withCheckedCopy() aborted while it copies rejects with the reason and leaves no copy", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uc-copy-" });
  try {
    const src = await source(dir, 40 * MiB);
    const abort = new AbortController();
    let stored = false;
    await assert.rejects(
      withCheckedCopy(src, `${dir}/tmp`, {
        ...limits,
        signal: abort.signal,
        onProgress: (p) => {
          if (p >= 20) abort.abort(new Error("task cancelled"));
          return Promise.resolve();
        },
      }, () => Promise.resolve(stored = true)),
      /task cancelled/,
    );
    assert.equal(stored, false);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/tmp`)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
