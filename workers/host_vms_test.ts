import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { keys } from "../core/keys.ts";
import { withEtcd } from "../tests/helpers/etcd_env.ts";
import { waitFor } from "../tests/helpers/cluster.ts";
import { captureLog } from "../tests/helpers/otp.ts";
import { vmDoc } from "../tests/helpers/task_ctx.ts";
import { HostVms } from "./host_vms.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name:
    "HostVms.start() lists in pages and keeps only its host's VMs; one placed there or moved away is seen from the watch",
  ...noSanitize,
  async fn() {
    await withEtcd(async (store) => {
      const txn = store.txn();
      for (let i = 0; i < 11; i++) {
        const id = `vm-${i}`;
        txn.put(keys.vm(id), vmDoc(id, { host: i % 3 ? "h2" : "h1" }));
      }
      await txn.commit();
      const stop = new AbortController();
      const vms = await HostVms.start(
        { store, host: "h1", log: captureLog(), pageSize: 2 },
        stop.signal,
      );
      try {
        const ids = () => vms.items().map((v) => v.value.id).sort();
        assert.deepEqual(ids(), ["vm-0", "vm-3", "vm-6", "vm-9"]);
        const seen: string[] = [];
        vms.onChange((id, a, b) => seen.push(`${id}:${!!a}:${!!b}`));
        await store.txn().put(keys.vm("vm-1"), vmDoc("vm-1", { host: "h1" }))
          .commit();
        await store.txn().put(keys.vm("vm-3"), vmDoc("vm-3", { host: "h2" }))
          .commit();
        await store.txn().delete(keys.vm("vm-6")).commit();
        // Another host's VM changes nothing here.
        await store.txn().put(keys.vm("vm-2"), vmDoc("vm-2", { host: "h3" }))
          .commit();
        const last = await store.txn().put(
          keys.vm("vm-9"),
          vmDoc("vm-9", { host: "h1", phase: "running" }),
        ).commit();
        await waitFor(
          "the last change",
          () => vms.get("vm-9")?.modRevision === last.revision,
        );
        assert.deepEqual(ids(), ["vm-0", "vm-1", "vm-9"]);
        assert.deepEqual(seen, [
          "vm-1:false:true",
          "vm-3:true:false",
          "vm-6:true:false",
          "vm-9:true:true",
        ]);
      } finally {
        stop.abort();
        await vms.done;
      }
    });
  },
});

Deno.test({
  name:
    "HostVms keeps the ids of VM documents it cannot read, and refresh() reads one VM now",
  ...noSanitize,
  async fn() {
    await withEtcd(async (store) => {
      const put = (id: string, value: string) =>
        store.client.kv.put({
          key: store.full(keys.vm(id)),
          value: Buffer.from(value),
        });
      await put("vm-a", "{not json");
      await store.txn().put(keys.vm("vm-b"), vmDoc("vm-b", { host: "h1" }))
        .commit();
      const stop = new AbortController();
      const vms = await HostVms.start(
        { store, host: "h1", log: captureLog() },
        stop.signal,
      );
      try {
        assert.deepEqual([...vms.unreadable()], ["vm-a"]);
        await put("vm-b", JSON.stringify({ id: "vm-b", future: true }));
        await waitFor("vm-b unreadable", () => vms.unreadable().has("vm-b"));
        assert.equal(vms.get("vm-b"), undefined);
        await store.txn().put(keys.vm("vm-a"), vmDoc("vm-a", { host: "h1" }))
          .commit();
        // Read now, whether or not the watch has brought it yet.
        const a = await vms.refresh("vm-a");
        assert.equal(a?.value.id, "vm-a");
        assert.ok(!vms.unreadable().has("vm-a"));
        await store.txn().delete(keys.vm("vm-a")).commit();
        assert.equal(await vms.refresh("vm-a"), null);
        assert.equal(vms.get("vm-a"), undefined);
      } finally {
        stop.abort();
        await vms.done;
      }
    });
  },
});

Deno.test({
  name:
    "HostVms.refresh() answered before a VM was deleted or moved away, but taken after the watch removed it, does not bring it back",
  ...noSanitize,
  async fn() {
    await withEtcd(async (store) => {
      for (const id of ["vm-d", "vm-m"]) {
        await store.txn().put(keys.vm(id), vmDoc(id, { host: "h1" })).commit();
      }
      // The same etcd, whose answers to refresh() reach HostVms only once
      // `release` is called (as an answer from a slower etcd member).
      let held = false, served = 0;
      let release = () => {};
      const gate = new Promise<void>((r) => release = r);
      const slow = new Proxy(store, {
        get(t, p) {
          if (p !== "list") {
            const v = Reflect.get(t, p);
            return typeof v === "function" ? v.bind(t) : v;
          }
          return async (...args: Parameters<typeof store.list>) => {
            const r = await t.list(...args);
            if (held) {
              served++;
              await gate;
            }
            return r;
          };
        },
      });
      const stop = new AbortController();
      const vms = await HostVms.start(
        { store: slow, host: "h1", log: captureLog() },
        stop.signal,
      );
      try {
        const seen: string[] = [];
        vms.onChange((id, a, b) => seen.push(`${id}:${!!a}:${!!b}`));
        held = true;
        const d = vms.refresh("vm-d"), m = vms.refresh("vm-m");
        await waitFor("both read", () => served === 2);
        await store.txn().delete(keys.vm("vm-d")).commit();
        await store.txn().put(keys.vm("vm-m"), vmDoc("vm-m", { host: "h2" }))
          .commit();
        await waitFor("both removed", () => vms.items().length === 0);
        release();
        assert.equal(await d, null);
        assert.equal(await m, null);
        assert.deepEqual(vms.items(), []);
        assert.deepEqual(seen, ["vm-d:true:false", "vm-m:true:false"]);
      } finally {
        release();
        stop.abort();
        await vms.done;
      }
    });
  },
});
