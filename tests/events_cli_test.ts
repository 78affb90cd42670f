/**
 * `ucloud events` (bin/ucloud, a real process) against the API over HTTP
 * on a real etcd: it prints the caller's VMs and their tasks as lines as
 * they change, and keeps following.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { Store } from "../core/store.ts";
import { call, noSanitize } from "./helpers/api.ts";
import { ROOT, waitFor } from "./helpers/cluster.ts";

Deno.test({
  name: "ucloud events prints a new VM and its task as lines as they come",
  ...noSanitize,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "uc-evc-" });
    const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
    const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/c" });
    const app = createApp({ store });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      app.fetch,
    );
    const child = new Deno.Command(`${ROOT}bin/ucloud`, {
      args: ["events"],
      env: { UCLOUD_API: `http://127.0.0.1:${server.addr.port}`, HOME: dir },
      stdout: "piped",
      stderr: "null",
    }).spawn();
    let out = "";
    const reading = (async () => {
      for await (const chunk of child.stdout) {
        out += new TextDecoder().decode(chunk);
      }
    })();
    try {
      const before = await call(app, "POST", "/v1/vms", {
        json: { name: "e1", cpus: 1, memory: 128 },
      });
      assert.equal(before.status, 201);
      const id = before.body.vm.id;
      // The snapshot shows the VM made before the stream.
      await waitFor("the snapshot line", () => out.includes(`vm ${id} e1 `));
      const r = await call(app, "POST", "/v1/vms", {
        json: { name: "e2", cpus: 1, memory: 128 },
      });
      const id2 = r.body.vm.id;
      await waitFor(
        "the new VM's line",
        () => out.includes(`vm ${id2} e2 pending - -\n`),
      );
      await waitFor(
        "its task's line",
        () => out.includes(`task ${r.body.task.id} vm.create queued ${id2}\n`),
      );
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await reading;
      await server.shutdown();
      store.close();
      await etcd.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
