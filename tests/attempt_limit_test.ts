/**
 * AttemptLimit (core/attempt_limit.ts) on a real etcd shared by two
 * clients, as two API replicas share it: concurrent attempts never pass
 * the limit, the window slides, and the record is bound to a lease.
 */
import assert from "node:assert/strict";
import { AttemptLimit, Attempts } from "../core/attempt_limit.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { Store } from "../core/store.ts";

Deno.test({
  name:
    "AttemptLimit.take() admits exactly `limit` concurrent attempts from two replicas",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "uc-attempts-" });
    const etcd = await startEtcd({ dataDir: dir });
    const [store, other] = [0, 1].map(() =>
      Store.connect({ endpoints: [etcd.endpoint], prefix: "/a" })
    );
    try {
      let now = 1_000_000;
      const clock = () => now;
      const opts = { scope: "t", limit: 5, windowSeconds: 60, now: clock };
      const replicas = [store, other].map((s) => new AttemptLimit(s, opts));
      const waits = await Promise.all(
        Array.from({ length: 20 }, (_, i) => replicas[i % 2].take("bob")),
      );
      assert.equal(waits.filter((w) => w === 0).length, 5, `${waits}`);
      assert.ok(waits.every((w) => w >= 0));
      const kv = await store.get(keys.attempts("t", "bob"), Attempts);
      assert.equal(kv?.value.at.length, 5);
      assert.notEqual(kv?.lease, "0");
      // Full: the wait is until the oldest attempt leaves the window.
      now += 10_000;
      assert.equal(await replicas[0].take("bob"), 50_000);
      assert.equal(await replicas[1].take("carol"), 0);
      // The window slides: 60 s after them, attempts pass again.
      now += 50_001;
      assert.equal(await replicas[1].take("bob"), 0);
    } finally {
      store.close();
      other.close();
      await etcd.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
