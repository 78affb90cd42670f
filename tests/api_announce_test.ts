/**
 * The API's metrics announcement (api/announce.ts) on a real etcd: a lost
 * lease (revoked from outside, as etcd does when it expires) is granted
 * anew and the key written again, time after time, and the waits for it
 * leave no listener behind on the announcement's own signals.
 */
import assert from "node:assert/strict";
import { ApiAnnouncement } from "../api/announce.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { ApiMetrics } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { noSanitize } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";

const LOSSES = 6;

/**
 * Counts the abort listeners each signal holds (added minus removed, or
 * run once), while `f` runs; the most any one signal held at the end.
 */
async function abortListeners(f: () => Promise<void>): Promise<number> {
  const proto = EventTarget.prototype;
  const add = proto.addEventListener;
  const remove = proto.removeEventListener;
  const held = new Map<EventTarget, Set<unknown>>();
  proto.addEventListener = function (type, listener, options) {
    if (type === "abort" && this instanceof AbortSignal && listener) {
      const set = held.get(this) ?? new Set();
      held.set(this, set);
      set.add(listener);
      const once = typeof options === "object" && options.once;
      if (once) {
        add.call(this, type, () => set.delete(listener), { once: true });
      }
    }
    return add.call(this, type, listener, options);
  };
  proto.removeEventListener = function (type, listener, options) {
    if (type === "abort") held.get(this)?.delete(listener);
    return remove.call(this, type, listener, options);
  };
  try {
    await f();
  } finally {
    proto.addEventListener = add;
    proto.removeEventListener = remove;
  }
  return Math.max(0, ...[...held.values()].map((s) => s.size));
}

Deno.test({
  name:
    "an API announcement whose lease is lost 6 times announces itself again each time and leaves no abort listener behind",
  ...noSanitize,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "uc-ann-" });
    const etcd = await startEtcd({ dataDir: dir });
    const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/ann" });
    const url = "http://127.0.0.1:8750/metrics";
    try {
      let a: ApiAnnouncement | undefined;
      const most = await abortListeners(async () => {
        a = ApiAnnouncement.start(store, url, { ttlSeconds: 2, retryMs: 50 });
        const key = keys.apiMetrics(a.replica);
        let lease = "0";
        for (let i = 0; i <= LOSSES; i++) {
          const kv = await waitFor(`announced ${i + 1} times`, async () => {
            const kv = await store.get(key, ApiMetrics);
            if (kv && kv.lease !== lease) return kv;
          });
          assert.equal(kv.value.url, url);
          lease = kv.lease;
          if (i < LOSSES) {
            await store.client.leaseClient.leaseRevoke({ ID: lease });
          }
        }
      });
      assert.ok(most <= 2, `one signal held ${most} abort listeners`);
      await a!.close();
      assert.equal(
        await store.get(keys.apiMetrics(a!.replica), ApiMetrics),
        null,
      );
    } finally {
      store.close();
      await etcd.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
