/**
 * `ucloud image ...` against the real API and etcd (the CLI's fetch is the
 * app's): an upload in 8 MiB chunks whose first connection breaks off and
 * resumes from the offset the API tells, `--wait` showing the import
 * until ready or failed, and list, show, publish and delete as a user sees
 * them.
 */
import assert from "node:assert/strict";
import { main } from "../cli/main.ts";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import type { Store } from "../core/store.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import { imageApp, putImage } from "./helpers/image_api_env.ts";

/** Sets the image as `image.import` would, once it is importing. */
async function importLater(store: Store, ref: string, end: Partial<Image>) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const img = await store.get(keys.image(ref), Image);
    if (img?.value.state === "importing") {
      await store.txn().put(img.key, { ...img.value, progress: 50 }).commit();
      await new Promise((r) => setTimeout(r, 100));
      await store.txn().put(img.key, {
        ...img.value,
        ...end,
        updatedAt: new Date().toISOString(),
      }).commit();
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${ref} never became importing`);
}

Deno.test("ucloud image: upload resumed after a broken connection, wait, list, show", (t) =>
  withApiEnv(t, async (env) => {
    const dir = await Deno.makeTempDir({ prefix: "ucloud-cli-img-" });
    const { app, store } = imageApp(env, `${dir}/www`);
    let puts = 0;
    let broken = false;
    const fetchApp = async (
      input: RequestInfo | URL,
      init?: RequestInit,
    ): Promise<Response> => {
      const req = new Request(input, init);
      const headers = new Headers(req.headers);
      headers.set("x-user", "alice");
      if (req.method === "PUT" && ++puts === 1) {
        // The first chunk breaks off after 3 MiB: the API keeps those.
        const body = new Uint8Array(await req.arrayBuffer()).slice(0, 3 << 20);
        headers.delete("content-length");
        const cut = new Request(req.url, { method: "PUT", headers, body });
        await (await app.fetch(cut)).body?.cancel();
        broken = true;
        throw new TypeError("error sending request: connection reset");
      }
      return app.fetch(new Request(req, { headers }));
    };
    const cli = async (argv: string[]) => {
      let out = "";
      let err = "";
      const code = await main(argv, {
        fetch: fetchApp,
        env: { UCLOUD_API: "http://ucloud.test", XDG_CONFIG_HOME: dir },
        stdout: { write: (s) => out += s },
        stderr: { write: (s) => err += s },
        pollIntervalMs: 20,
      });
      return { code, out, err };
    };
    try {
      await env.step(
        "upload: chunks, a broken one resumed, --wait",
        async () => {
          const data = new Uint8Array(20 << 20).map((_, i) => (i * 31) % 256);
          await Deno.writeFile(`${dir}/d.qcow2`, data);
          const importer = importLater(store, "alice/deb", {
            state: "ready",
            format: "qcow2",
            virtualSize: 1 << 30,
            storedSize: 20 << 20,
            sha256: "c0ffee".repeat(10) + "abcd",
          });
          const r = await cli([
            "image",
            "upload",
            "--name",
            "deb",
            `${dir}/d.qcow2`,
            "--wait",
          ]);
          await importer;
          assert.equal(r.code, 0, r.err);
          assert.ok(broken);
          // 3 chunks and the one that broke.
          assert.equal(puts, 4);
          assert.equal(r.out, "image deb: 20.0 MiB uploaded, ready\n");
          assert.match(r.err, /^upload deb: 20\.0 MiB of 20\.0 MiB in /m);
          assert.match(r.err, /image deb: importing 50%/);
          assert.match(r.err, /image deb: ready/);
          assert.deepEqual(
            await Deno.readFile(`${dir}/www/.incoming/alice/deb`),
            data,
          );
        },
      );

      await env.step("list, show, publish, delete", async () => {
        await putImage(store, "alice", "imp", {
          state: "importing",
          progress: 40,
        });
        await putImage(store, "alice", "bad", {
          state: "failed",
          reason: "a backing file is not allowed",
        });
        const list = await cli(["image", "list"]);
        assert.equal(list.code, 0, list.err);
        const [head, ...rows] = list.out.trimEnd().split("\n");
        assert.match(
          head,
          /^OWNER +NAME +STATE +FORMAT +VIRTUAL +STORED +SHA256 +PUBLIC$/,
        );
        assert.equal(rows.length, 3);
        assert.match(
          list.out,
          /alice +deb +ready +qcow2 +1\.0 GiB +20\.0 MiB +c0ffeec0ffee +no/,
        );
        const imp = await cli(["image", "show", "imp"]);
        assert.match(imp.out, /^state: +importing 40%$/m);
        const bad = await cli(["image", "show", "bad"]);
        assert.match(
          bad.out,
          /^state: +failed: a backing file is not allowed$/m,
        );
        const pub = await cli(["image", "publish", "deb"]);
        assert.equal(pub.code, 1);
        assert.match(pub.err, /not an admin/);
        const json = await cli(["image", "show", "deb", "--json"]);
        assert.equal(JSON.parse(json.out).state, "ready");
        const del = await cli(["image", "delete", "bad"]);
        assert.equal(del.out, "image bad deleted\n");
        const gone = await cli(["image", "show", "bad"]);
        assert.equal(gone.code, 1);
        assert.match(gone.err, /Cannot find image bad/);
      });

      await env.step(
        "create --file --wait fails with the import's reason",
        async () => {
          await Deno.mkdir(`${dir}/www/alice/upload`, { recursive: true });
          await Deno.writeFile(
            `${dir}/www/alice/upload/raw.qcow2`,
            new Uint8Array(10),
          );
          const importer = importLater(store, "alice/raw", {
            state: "failed",
            reason: "not a qcow2 file (raw data)",
          });
          const r = await cli([
            "image",
            "create",
            "--name",
            "raw",
            "--file",
            "raw.qcow2",
            "--wait",
          ]);
          await importer;
          assert.equal(r.code, 1);
          assert.match(
            r.err,
            /error: image raw failed: not a qcow2 file \(raw data\)/,
          );
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }));
