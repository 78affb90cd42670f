/**
 * The listing a watch starts from (core/watch.ts `listPages()`, used by
 * `watchPrefix()` and workers/host_vms.ts) reads a large prefix in
 * requests of at most `LIST_PAGE` keys, all at the first one's revision,
 * and a watch started from it sees every write exactly once (DESIGN.md
 * rules 4 and 5). Requests counted with etcd's `etcd_mvcc_range_total`.
 */
import assert from "node:assert/strict";
import { startEtcd } from "../core/etcd_server.ts";
import { Store } from "../core/store.ts";
import {
  LIST_PAGE,
  listPages,
  listRaw,
  type RawKv,
  watchPrefix,
} from "../core/watch.ts";
import { waitFor } from "./helpers/cluster.ts";

const N = 3000;
const key = (i: number) => `p/k${String(i).padStart(5, "0")}`;

/** A store on a one-node etcd of its own, and its range request counter. */
async function withStore(
  f: (store: Store, ranges: () => Promise<number>) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "uc-wp-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/wp" });
  const ranges = async () => {
    const text = await (await fetch(`${etcd.endpoint}/metrics`)).text();
    return Number(text.match(/^etcd_mvcc_range_total (\S+)$/m)?.[1] ?? NaN);
  };
  try {
    for (let i = 0; i < N; i += 100) {
      const txn = store.txn();
      for (let j = i; j < i + 100; j++) txn.put(key(j), { v: 0 });
      await txn.commit();
    }
    await f(store, ranges);
  } finally {
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("listRaw() reads 3000 keys in requests of at most LIST_PAGE, all at the first request's revision", async () => {
  await withStore(async (store, ranges) => {
    const before = await ranges();
    const all = await listRaw(store, "p/");
    const requests = await ranges() - before;
    console.log(`${N} keys listed in ${requests} range requests`);
    assert.equal(all.items.length, N);
    assert.deepEqual(
      all.items.map((kv) => kv.key),
      Array.from({ length: N }, (_, i) => key(i)),
    );
    // One request per LIST_PAGE keys, plus at most one that finds the end.
    assert.ok(requests >= N / LIST_PAGE, `${requests} request(s)`);
    assert.ok(requests <= N / LIST_PAGE + 1, `${requests} request(s)`);

    // Writes between two pages are not in the listing: it is one snapshot.
    const sizes: number[] = [];
    const seen = new Map<string, string>();
    const revision = await listPages(store, "p/", async (page: RawKv[]) => {
      if (sizes.length === 0) {
        await store.txn().put(key(2500), { v: 1 }).delete(key(2600))
          .put("p/z", { v: 1 }).commit();
      }
      sizes.push(page.length);
      for (const kv of page) seen.set(kv.key, kv.value);
    }, 700);
    assert.deepEqual(sizes, [700, 700, 700, 700, 200]);
    assert.equal(seen.size, N);
    assert.ok(seen.has(key(2600)) && !seen.has("p/z"));
    assert.match(seen.get(key(2500))!, /"v":0/);
    const now = await listRaw(store, "p/");
    assert.ok(BigInt(now.revision) > BigInt(revision));
    assert.equal(now.items.length, N);
  });
});

Deno.test("watchPrefix() over 3000 keys sees each write made while it lists exactly once", async () => {
  await withStore(async (store) => {
    const state = new Map<string, string>();
    const delivered = new Map<string, number>();
    const count = (k: string) => delivered.set(k, (delivered.get(k) ?? 0) + 1);
    let listed = null as { revision: bigint; keys: number } | null;
    const ac = new AbortController();
    // Every write is a new key (n...) and an update of an old one.
    const written: { key: string; revision: bigint; afterList: boolean }[] = [];
    const write = async (i: number) => {
      const k = `p/n${String(i).padStart(5, "0")}`;
      const r = await store.txn().put(k, { v: i }).put(key(i % N), { v: i })
        .commit();
      written.push({
        key: k,
        revision: BigInt(r.revision),
        afterList: !!listed,
      });
    };
    await write(0);
    const done = watchPrefix(store, "p/", {
      signal: ac.signal,
      onReset: (items, revision) => {
        state.clear();
        delivered.clear();
        for (const kv of items) {
          state.set(kv.key, kv.value);
          if (kv.key.startsWith("p/n")) count(kv.key);
        }
        listed = { revision: BigInt(revision), keys: items.length };
      },
      onEvent: (ev) => {
        if (ev.type === "delete") state.delete(ev.key);
        else {
          state.set(ev.key, ev.value);
          if (ev.key.startsWith("p/n")) count(ev.key);
        }
      },
    });
    try {
      let i = 1;
      while (!listed) {
        await Promise.all([0, 1, 2, 3].map(() => write(i++)));
      }
      for (const end = i + 100; i < end;) await write(i++);
      const last = written.at(-1)!.key;
      await waitFor("the last write", () => delivered.has(last), 10_000);
      const r = listed!.revision;
      const during = written.filter((w) => w.revision > r && !w.afterList);
      console.log(
        `${written.length} writes: ${
          written.filter((w) => w.revision <= r).length
        } before the listing's revision, ${during.length} while it listed, ` +
          `${written.filter((w) => w.afterList).length} after`,
      );
      assert.ok(written.some((w) => w.revision <= r));
      for (const w of written) {
        assert.equal(delivered.get(w.key), 1, `${w.key} seen once`);
      }
      const truth = await listRaw(store, "p/");
      assert.equal(state.size, truth.items.length);
      for (const kv of truth.items) assert.equal(state.get(kv.key), kv.value);
    } finally {
      ac.abort();
      await done;
    }
  });
});
