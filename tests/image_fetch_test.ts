/**
 * `image.fetch` against a real etcd and a local HTTP server: a download
 * (through a redirect) that hands the file to `image.import`; refusals of
 * loopback and metadata addresses (literal, or a host name resolving to
 * 127.0.0.1) that never reach the server; redirect, size, status and time
 * limits, each recording the image `failed` with the reason and leaving
 * no file.
 */
import assert from "node:assert/strict";
import { type Image } from "../core/image_schemas.ts";
import { Image as ImageDoc } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import { imageFetch } from "../tasks/image_fetch.ts";
import { noSanitize } from "./helpers/api.ts";
import { type Bench, withBench } from "./helpers/task_ctx.ts";

const DATA = new Uint8Array(300_000).map((_, i) => i % 253);

/** A local server: the image, redirects, a 404, a slow and a long body. */
function startServer() {
  let hits = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      hits++;
      const path = new URL(req.url).pathname;
      const hop = /^\/hop(\d+)$/.exec(path);
      if (hop) {
        const n = Number(hop[1]);
        return Response.redirect(
          new URL(n > 0 ? `/hop${n - 1}` : "/d.qcow2", req.url),
          302,
        );
      }
      if (path === "/to-file") {
        return new Response(null, {
          status: 302,
          headers: { location: "file:///etc/passwd" },
        });
      }
      if (path === "/d.qcow2") return new Response(DATA);
      if (path === "/chunked") return new Response(ReadableStream.from([DATA]));
      if (path === "/slow") {
        await new Promise((r) => setTimeout(r, 3000));
        return new Response(DATA);
      }
      return new Response("no", { status: 404 });
    },
  );
  return {
    server,
    base: `http://127.0.0.1:${server.addr.port}`,
    hits: () => hits,
  };
}

/** Runs image.fetch for `url` on a fresh importing image; returns the outcome. */
async function runFetch(
  b: Bench,
  dir: string,
  name: string,
  url: string,
  images: Record<string, unknown> = {},
) {
  const worker = await b.incarnation("h1");
  const ref = `alice/${name}`;
  const ctx = await b.context(worker, "image.fetch", { image: ref, url });
  const at = new Date().toISOString();
  const doc: Image = {
    name,
    owner: "alice",
    public: false,
    state: "importing",
    source: { kind: "url", url },
    progress: 0,
    task: ctx.task.id,
    createdAt: at,
    updatedAt: at,
  };
  await b.store.txn().put(keys.image(ref), doc).commit();
  const config = {
    ...b.config,
    images: { ...b.config.images, uploadDir: dir, ...images },
  };
  const out = await imageFetch({ ...ctx, config });
  if (out.txn) assert.ok((await out.txn.commit()).ok);
  const img = await b.store.get(keys.image(ref), ImageDoc);
  return { out, img: img!.value, file: `${dir}/.incoming/alice/${name}` };
}

const gone = async (path: string) =>
  assert.equal(await Deno.stat(path).catch(() => null), null, path);

Deno.test({
  name: "image.fetch downloads through redirects and enqueues image.import",
  ...noSanitize,
  fn: () =>
    withBench(async (b) => {
      const dir = await Deno.makeTempDir({ prefix: "ucloud-fetch-" });
      const s = startServer();
      try {
        const r = await runFetch(b, dir, "f1", `${s.base}/hop3`, {
          allowPrivateUrls: true,
        });
        assert.equal(r.img.state, "importing");
        assert.deepEqual(await Deno.readFile(r.file), DATA);
        const t = await b.store.get(keys.task(r.img.task!), Task);
        assert.equal(t?.value.kind, "image.import");
        assert.deepEqual(t?.value.payload, { image: "alice/f1", file: r.file });
        const chunked = await runFetch(b, dir, "f2", `${s.base}/chunked`, {
          allowPrivateUrls: true,
        });
        assert.equal(chunked.img.state, "importing");
        assert.equal((await Deno.stat(chunked.file)).size, DATA.length);
        // Deleted meanwhile: nothing to do, and its download goes.
        await b.store.txn().delete(keys.image("alice/f2")).commit();
        const worker = await b.incarnation("h1");
        const ctx = await b.context(worker, "image.fetch", {
          image: "alice/f2",
          url: `${s.base}/d.qcow2`,
        });
        const config = {
          ...b.config,
          images: { ...b.config.images, uploadDir: dir },
        };
        const out = await imageFetch({ ...ctx, config });
        assert.match(
          (out.result as { skipped: string }).skipped,
          /no longer waits/,
        );
        await gone(chunked.file);
      } finally {
        await s.server.shutdown();
        await Deno.remove(dir, { recursive: true });
      }
    }),
});

Deno.test({
  name:
    "image.fetch refuses loopback, private and metadata addresses, and limits",
  ...noSanitize,
  fn: () =>
    withBench(async (b) => {
      const dir = await Deno.makeTempDir({ prefix: "ucloud-fetch-" });
      const s = startServer();
      const port = s.server.addr.port;
      try {
        let n = 0;
        const refused: [string, RegExp][] = [
          [
            `http://localhost:${port}/d.qcow2`,
            /localhost resolves to 127\.0\.0\.1, a loopback address/,
          ],
          [`${s.base}/d.qcow2`, /127\.0\.0\.1 is a loopback address/],
          [`http://[::1]:${port}/d.qcow2`, /::1 is a loopback address/],
          [
            "http://169.254.169.254/latest/",
            /169\.254\.169\.254 is a metadata/,
          ],
          ["http://[fd00:ec2::254]/", /fd00:ec2::254 is a metadata address/],
          ["http://10.0.0.1/d.qcow2", /10\.0\.0\.1 is a private address/],
        ];
        for (const [url, why] of refused) {
          const r = await runFetch(b, dir, `r${n++}`, url);
          assert.equal(r.img.state, "failed", url);
          assert.match(r.img.reason!, why);
          await gone(r.file);
        }
        assert.equal(s.hits(), 0, "no refused fetch reached the server");
        const allow = { allowPrivateUrls: true };
        const limits: [string, Record<string, unknown>, RegExp][] = [
          [`${s.base}/hop6`, allow, /More than 5 redirects/],
          [`${s.base}/to-file`, allow, /only http and https/],
          [`${s.base}/nope`, allow, /answered HTTP 404/],
          [
            `${s.base}/d.qcow2`,
            { ...allow, maxUploadBytes: 1000 },
            /larger than the limit of 1000 bytes/,
          ],
          [
            `${s.base}/chunked`,
            { ...allow, maxUploadBytes: 1000 },
            /larger than the limit of 1000 bytes/,
          ],
          [
            `${s.base}/slow`,
            { ...allow, urlTimeoutSeconds: 1 },
            /took longer than 1 s/,
          ],
        ];
        for (const [url, images, why] of limits) {
          const r = await runFetch(b, dir, `l${n++}`, url, images);
          assert.equal(r.img.state, "failed", url);
          assert.match(r.img.reason!, why);
          await gone(r.file);
        }
      } finally {
        await s.server.shutdown();
        await Deno.remove(dir, { recursive: true });
      }
    }),
});
