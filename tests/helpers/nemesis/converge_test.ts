/**
 * Tests of converge.ts's `readPrefix()` against a real etcd.
 */
import assert from "node:assert/strict";
import { startEtcd } from "../../../core/etcd_server.ts";
import { Store } from "../../../core/store.ts";
import { readPrefix } from "./converge.ts";

Deno.test({
  name:
    "readPrefix() reads a prefix larger than one etcd message, and nothing beside it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "uc-read-" });
    const etcd = await startEtcd({ dataDir: dir });
    const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/t" });
    try {
      // 1,200 keys of 5 KiB: 6 MiB, more than etcd's 4 MiB per answer.
      const big = "x".repeat(5 * 1024);
      for (let i = 0; i < 1200; i += 100) {
        const txn = store.txn();
        for (let j = i; j < i + 100; j++) {
          txn.put(`task/t-${String(j).padStart(4, "0")}`, { big, j });
        }
        assert.ok((await txn.commit()).ok);
      }
      await store.txn().put("taskx", { beside: true }).commit();
      const kv = await readPrefix(store, "task/");
      assert.equal(Object.keys(kv).length, 1200);
      assert.equal(JSON.parse(kv["task/t-1199"]).j, 1199);
      assert.ok(!("taskx" in kv));
      assert.equal(Object.keys(await readPrefix(store, "")).length, 1201);
    } finally {
      store.close();
      await etcd.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
