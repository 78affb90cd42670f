/**
 * placedOn() (scheduler/placed_on.ts) reads a host's VMs through its
 * reservations: the `allocvm/<host>/` entries in pages of LIST_PAGE
 * (scheduler/ledger.ts `reservedOn()`), the VMs an older version recorded
 * in `alloc/<host>`'s `vms`, then each VM by key. Real etcd; range
 * requests counted on the store's etcd client.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import type { Store } from "../core/store.ts";
import { LIST_PAGE } from "../core/watch.ts";
import { placedOn } from "../scheduler/placed_on.ts";
import { withEtcd } from "./helpers/etcd_env.ts";
import { vmDoc } from "./helpers/task_ctx.ts";

const SIZE = { cpus: 1, memoryMiB: 128 };

/** Counts the range requests of `store` that start under `prefix`. */
function countRanges(store: Store, prefix: string) {
  const kv = store.client.kv;
  const range = kv.range.bind(kv);
  const seen = { requests: 0 };
  kv.range = (...args: Parameters<typeof range>) => {
    const key = args[0].key;
    if (store.rel(key!.toString()).startsWith(prefix)) seen.requests++;
    return range(...args);
  };
  return seen;
}

Deno.test("placedOn() reads a host's entries in pages and the VMs an older version recorded in alloc/<host>", async () => {
  await withEtcd(async (store) => {
    const n = 2 * LIST_PAGE + 100;
    const ids = Array.from({ length: n }, (_, i) => `vm-${1000 + i}`);
    for (let i = 0; i < n; i += 50) {
      const txn = store.txn();
      for (const id of ids.slice(i, i + 50)) {
        txn.put(keys.vm(id), vmDoc(id, { host: "h1" }))
          .put(keys.allocVm("h1", id), SIZE);
      }
      await txn.commit();
    }
    const old = ["vm-old-a", "vm-old-b"];
    const txn = store.txn().put(keys.alloc("h1"), {
      cpus: n,
      memoryMiB: n * 128,
      diskMiB: 0,
      count: n,
      vms: Object.fromEntries(old.map((id) => [id, SIZE])),
    });
    for (const id of old) txn.put(keys.vm(id), vmDoc(id, { host: "h1" }));
    await txn.commit();
    // Another host's entries are not read.
    await store.txn().put(keys.allocVm("h2", "vm-h2"), SIZE)
      .put(keys.vm("vm-h2"), vmDoc("vm-h2", { host: "h2" })).commit();

    const seen = countRanges(store, keys.allocVmsOf("h1"));
    const got = await placedOn(store, "h1");
    assert.equal(seen.requests, 3, `${seen.requests} request(s)`);
    assert.deepEqual(
      got.items.map((v) => v.value.id).sort(),
      [...ids, ...old].sort(),
    );
    assert.deepEqual(got.unreadable, []);
  });
});
