/**
 * `Txn.ifNoneCreatedSince()` on a real etcd: the compare the image delete
 * uses so that a VM created after it looked at the VMs fails it.
 */
import assert from "node:assert/strict";
import { startEtcd } from "../core/etcd_server.ts";
import { Store } from "../core/store.ts";
import { z } from "zod";

Deno.test("ifNoneCreatedSince() fails after a key was created under the prefix, not after an update", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-since-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/s" });
  try {
    const empty = await store.list("vm/", z.unknown());
    assert.ok(
      (await store.txn().ifNoneCreatedSince("vm/", empty.revision).commit()).ok,
      "an empty prefix holds",
    );
    await store.txn().put("vm/a", { n: 1 }).commit();
    const seen = await store.list("vm/", z.unknown());
    await store.txn().put("vm/a", { n: 2 }).put("other/x", 1).commit();
    assert.ok(
      (await store.txn().ifNoneCreatedSince("vm/", seen.revision).commit()).ok,
      "updates and other prefixes do not break it",
    );
    await store.txn().put("vm/b", { n: 1 }).commit();
    assert.equal(
      (await store.txn().ifNoneCreatedSince("vm/", seen.revision).commit()).ok,
      false,
      "a key created since breaks it",
    );
  } finally {
    store.close();
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
