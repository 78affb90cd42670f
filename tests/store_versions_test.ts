/**
 * Documents across versions at the store layer, against a real etcd:
 * listings skip (and report) what they cannot read, single reads name the
 * key, writes keep unknown fields and stamp `schemaVersion`, and the
 * placement cache's watches survive unreadable documents.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { SCHEMA_VERSION } from "../core/documents.ts";
import { UnreadableError } from "../core/errors.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { PlacementCache } from "../scheduler/cache.ts";
import { type Host, Vm } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { unreadableDocuments } from "../core/unreadable.ts";
import { waitFor } from "./helpers/cluster.ts";

async function withStore(f: (store: Store) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "uc-sv-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({
    endpoints: [etcd.endpoint],
    prefix: "/sv",
    timeoutMs: 2000,
  });
  try {
    await f(store);
  } finally {
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes `text` as is, past the store's encoding. */
async function putRaw(store: Store, key: string, text: string) {
  await store.client.kv.put({ key: store.full(key), value: Buffer.from(text) });
}

async function getRaw(store: Store, key: string) {
  const r = await store.client.kv.range({ key: store.full(key) });
  return JSON.parse(r.kvs[0].value.toString());
}

function vmDoc(id: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    owner: "alice",
    spec: { name: id, cpus: 1, memory: 128, image: "tiny" },
    nics: [],
    desired: "stopped",
    status: { phase: "stopped", updatedAt: "2026-01-01T00:00:00Z" },
    createdAt: "2026-01-01T00:00:00Z",
    ...extra,
  };
}

async function unreadableCount(prefix: string): Promise<number> {
  const m = await unreadableDocuments.get();
  return m.values.find((v) => v.labels.prefix === prefix)?.value ?? 0;
}

Deno.test("Store.list() skips and reports documents it cannot read; Store.get() of one names the key", async () => {
  await withStore(async (store) => {
    await putRaw(store, keys.vm("vm-a"), JSON.stringify(vmDoc("vm-a")));
    await putRaw(store, keys.vm("vm-b"), "{not json");
    await putRaw(store, keys.vm("vm-c"), JSON.stringify({ id: "vm-c" }));
    await putRaw(
      store,
      keys.vm("vm-d"),
      JSON.stringify(vmDoc("vm-d", { schemaVersion: 99, movable: true })),
    );
    const before = await unreadableCount("vm");
    const { items, unreadable } = await store.list(keys.vms, Vm);
    assert.deepEqual(items.map((i) => i.key), [
      keys.vm("vm-a"),
      keys.vm("vm-d"),
    ]);
    assert.deepEqual(items.map((i) => i.schemaVersion), [0, 99]);
    assert.equal(
      (items[1].value as Vm & { movable?: boolean }).movable,
      true,
    );
    assert.deepEqual(unreadable.map((u) => u.key), [
      keys.vm("vm-b"),
      keys.vm("vm-c"),
    ]);
    assert.equal(unreadable[0].reason, "not JSON");
    assert.match(unreadable[1].reason, /^schema: owner: /);
    assert.equal(await unreadableCount("vm"), before + 2);
    await assert.rejects(
      () => store.get(keys.vm("vm-b"), Vm),
      (err) =>
        err instanceof UnreadableError && err.key === keys.vm("vm-b") &&
        /Cannot read document vm\/vm-b: not JSON/.test(err.message),
    );
    assert.equal(await store.get(keys.vm("vm-x"), Vm), null);
  });
});

Deno.test("a document read and written back keeps a newer version's fields and gets this schemaVersion", async () => {
  await withStore(async (store) => {
    const future: Record<string, unknown> = vmDoc("vm-f", {
      schemaVersion: 99,
      movable: true,
      spec: { name: "f", cpus: 1, memory: 128, image: "tiny", gpu: "a" },
      status: { phase: "stopped", updatedAt: "t", migration: { to: "h2" } },
    });
    await putRaw(store, keys.vm("vm-f"), JSON.stringify(future));
    const cur = (await store.get(keys.vm("vm-f"), Vm))!;
    assert.equal(cur.schemaVersion, 99);
    const r = await store.txn().ifModRevision(cur.key, cur.modRevision)
      .put(cur.key, { ...cur.value, desired: "running" }).commit();
    assert.ok(r.ok);
    const { schemaVersion: _, ...want } = future;
    assert.deepEqual(await getRaw(store, keys.vm("vm-f")), {
      ...want,
      schemaVersion: SCHEMA_VERSION,
      desired: "running",
    });
  });
});

Deno.test("PlacementCache skips unreadable host documents, at listing and in events, and keeps watching", async () => {
  await withStore(async (store) => {
    const host = (name: string): Host => ({
      name,
      capacity: { cpus: 4, memoryMiB: 1024 },
      addresses: [],
      os: "linux",
      drivers: ["sim"],
      state: "active",
      registeredAt: "t",
    });
    await putRaw(store, keys.host("h1"), JSON.stringify(host("h1")));
    await putRaw(store, keys.host("bad"), "not json");
    await putRaw(store, keys.alloc("h1"), JSON.stringify({ vms: 5 }));
    const cache = PlacementCache.start(store);
    try {
      assert.ok(await cache.waitReady(10_000));
      assert.deepEqual(cache.candidates().map((c) => c.host.name), ["h1"]);
      await putRaw(store, keys.host("h2"), JSON.stringify({ name: 2 }));
      await putRaw(
        store,
        keys.host("h3"),
        JSON.stringify({ ...host("h3"), schemaVersion: 99, rack: "r1" }),
      );
      const names = await waitFor("h3 in the cache", () => {
        const n = cache.candidates().map((c) => c.host.name);
        return n.includes("h3") && n;
      }, 10_000);
      assert.deepEqual(names, ["h1", "h3"]);
      const h3 = cache.candidate("h3")!.host as Host & { rack?: string };
      assert.equal(h3.rack, "r1");
    } finally {
      await cache.close();
    }
  });
});
