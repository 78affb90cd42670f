/**
 * `image.fetch` run by a real worker process: an image created through the
 * API from a URL of a local HTTP server (private URLs allowed by the
 * config) is downloaded on the host and handed to `image.import`.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import { call, headerAuth, noSanitize } from "./helpers/api.ts";
import { waitFor, withCluster } from "./helpers/cluster.ts";

Deno.test({
  name: "a worker fetches an image's URL and enqueues its import",
  ...noSanitize,
  fn: () =>
    withCluster(async (c) => {
      const data = new Uint8Array(1 << 20).map((_, i) => i % 199);
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        () => new Response(data),
      );
      try {
        const images = {
          uploadDir: `${c.dir}/www`,
          allowPrivateUrls: true,
        };
        await Deno.writeTextFile(
          c.env.UCLOUD_CONFIG,
          JSON.stringify({ images }),
        );
        await c.addWorker({ name: "h1" });
        const app = createApp({
          store: c.store,
          auth: headerAuth,
          config: { ...c.config, images: { ...c.config.images, ...images } },
        });
        const url = `http://127.0.0.1:${server.addr.port}/d.qcow2`;
        const made = await call(app, "POST", "/v1/images", {
          json: { name: "web", url },
          headers: { "x-user": "alice" },
        });
        assert.equal(made.status, 201, JSON.stringify(made.body));
        const fetchTask = made.body.task.id;
        const done = await waitFor("image.fetch to succeed", async () => {
          const t = await c.store.get(keys.task(fetchTask), Task);
          if (t?.value.state === "failed") throw new Error(t.value.error);
          return t?.value.state === "succeeded" && t.value;
        }, 120_000);
        assert.equal((done.result as { bytes: number }).bytes, data.length);
        const img = await c.store.get(keys.image("alice/web"), Image);
        assert.notEqual(img?.value.task, fetchTask);
        const imp = await c.store.get(keys.task(img!.value.task!), Task);
        assert.equal(imp?.value.kind, "image.import");
        const file = `${c.dir}/www/.incoming/alice/web`;
        // The import (its own handler) checks and removes the file later.
        assert.deepEqual(imp?.value.payload, { image: "alice/web", file });
      } finally {
        await server.shutdown();
      }
    }, { guest: false }),
});
