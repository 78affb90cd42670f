/**
 * `PUT /v1/images/{name}/upload` against a real etcd and the API served
 * on a port: an upload in two chunks whose first connection breaks off,
 * resumed from the offset the API tells; a chunk at the wrong offset
 * (416); an upload over the limit (413, nothing left); the last byte
 * turning the image `importing` with its `image.import` task.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Image } from "../core/image_schemas.ts";
import { Task } from "../core/schemas.ts";
import { assertError, call } from "./helpers/api.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import { ALICE, BOB, imageApp } from "./helpers/image_api_env.ts";

const bytes = (n: number) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) % 251;
  return b;
};

/** Sends a PUT whose body stops after `sent` of `length` bytes, then closes. */
async function brokenPut(
  port: number,
  path: string,
  headers: Record<string, string>,
  length: number,
  body: Uint8Array,
) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = [
    `PUT ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    `Content-Length: ${length}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");
  await conn.write(new TextEncoder().encode(head));
  await conn.write(body);
  conn.close();
}

Deno.test("image upload: chunks, a broken connection, resume, limits", (t) =>
  withApiEnv(t, async (env) => {
    const dir = await Deno.makeTempDir({ prefix: "ucloud-img-up-" });
    const { step } = env;
    const { app, store } = imageApp(env, dir, { maxUploadBytes: 4096 });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      app.fetch,
    );
    const base = `http://127.0.0.1:${server.addr.port}`;
    try {
      await step("two chunks, the first broken off, then resumed", async () => {
        const data = bytes(3000);
        const made = await call(app, "POST", "/v1/images", {
          json: { name: "up1" },
          headers: ALICE,
        });
        assert.equal(made.status, 201);
        await brokenPut(
          server.addr.port,
          "/v1/images/up1/upload",
          {
            ...ALICE,
            "Content-Range": "bytes 0-1999/3000",
          },
          2000,
          data.subarray(0, 1200),
        );
        // What arrived is kept; the API tells the offset (GET and HEAD).
        const deadline = Date.now() + 30_000;
        let offset = -1;
        while (Date.now() < deadline) {
          const r = await fetch(`${base}/v1/images/up1/upload`, {
            method: "HEAD",
            headers: ALICE,
          });
          await r.body?.cancel();
          offset = Number(r.headers.get("upload-offset"));
          if (offset === 1200) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(offset, 1200);
        const got = await call(app, "GET", "/v1/images/up1/upload", {
          headers: ALICE,
        });
        assert.deepEqual(
          [got.body.offset, got.body.complete, got.body.image.state],
          [1200, false, "uploading"],
        );
        // Not at the offset: 416 telling it.
        const wrong = await fetch(`${base}/v1/images/up1/upload`, {
          method: "PUT",
          headers: { ...ALICE, "Content-Range": "bytes 0-99/3000" },
          body: data.subarray(0, 100),
        });
        assert.equal(wrong.status, 416);
        assert.equal(wrong.headers.get("upload-offset"), "1200");
        assert.equal((await wrong.json()).error.field, "Content-Range");
        // Bob cannot append to alice's upload.
        const bobs = await fetch(`${base}/v1/images/up1/upload`, {
          method: "PUT",
          headers: { ...BOB, "Content-Range": "bytes 1200-2999/3000" },
          body: data.subarray(1200),
        });
        assert.equal(bobs.status, 404);
        await bobs.body?.cancel();
        // The rest, streamed.
        const rest = await fetch(`${base}/v1/images/up1/upload`, {
          method: "PUT",
          headers: { ...ALICE, "Content-Range": "bytes 1200-2999/3000" },
          body: ReadableStream.from([
            data.subarray(1200, 2000),
            data.subarray(2000),
          ]),
        });
        const done = await rest.json();
        assert.equal(rest.status, 200, JSON.stringify(done));
        assert.equal(done.offset, 3000);
        assert.equal(done.complete, true);
        assert.equal(done.image.state, "importing");
        const file = `${dir}/.incoming/alice/up1`;
        assert.deepEqual(await Deno.readFile(file), data);
        assert.equal(await Deno.stat(`${file}.part`).catch(() => null), null);
        const img = await store.get(keys.image("alice/up1"), Image);
        const task = await store.get(keys.task(img!.value.task!), Task);
        assert.equal(task?.value.kind, "image.import");
        assert.deepEqual(task?.value.payload, { image: "alice/up1", file });
        // Complete: no more bytes.
        const more = await call(app, "PUT", "/v1/images/up1/upload", {
          body: "x",
          headers: ALICE,
        });
        assertError(more, 409, undefined, /it is importing, not uploading/);
      });

      await step("one request without a range is the whole image", async () => {
        await call(app, "POST", "/v1/images", {
          json: { name: "up2" },
          headers: ALICE,
        });
        const r = await fetch(`${base}/v1/images/up2/upload`, {
          method: "PUT",
          headers: ALICE,
          body: bytes(100),
        });
        const b = await r.json();
        assert.equal(r.status, 200, JSON.stringify(b));
        assert.equal(b.image.state, "importing");
        assert.deepEqual(
          await Deno.readFile(`${dir}/.incoming/alice/up2`),
          bytes(100),
        );
      });

      await step("over the limit: 413 and nothing left", async () => {
        await call(app, "POST", "/v1/images", {
          json: { name: "big" },
          headers: ALICE,
        });
        const part = `${dir}/.incoming/alice/big.part`;
        // Told in advance (Content-Range total or Content-Length).
        for (
          const headers of [
            { ...ALICE, "Content-Range": "bytes 0-99/5000" },
            ALICE,
          ]
        ) {
          const r = await fetch(`${base}/v1/images/big/upload`, {
            method: "PUT",
            headers,
            body: headers === ALICE ? bytes(5000) : bytes(100),
          });
          assert.equal(r.status, 413);
          assert.equal((await r.json()).error.code, "too_large");
          assert.equal(await Deno.stat(part).catch(() => null), null);
        }
        // Found out while streaming (no length given): the part goes.
        const chunks = Array.from({ length: 10 }, () => bytes(1000));
        const r = await fetch(`${base}/v1/images/big/upload`, {
          method: "PUT",
          headers: ALICE,
          body: ReadableStream.from(chunks),
        });
        assert.equal(r.status, 413);
        await r.body?.cancel();
        assert.equal(await Deno.stat(part).catch(() => null), null);
        const img = await store.get(keys.image("alice/big"), Image);
        assert.equal(img?.value.state, "uploading");
      });

      await step("a bad Content-Range is 400 naming it", async () => {
        for (const range of ["bytes 5-1/10", "bytes 0-10/10", "items 0-1/2"]) {
          const r = await call(app, "PUT", "/v1/images/big/upload", {
            body: "x",
            headers: { ...ALICE, "Content-Range": range },
          });
          assertError(r, 400, "Content-Range");
        }
      });
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  }));
