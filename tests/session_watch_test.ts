/**
 * The lease session and the watch helper against a real etcd started for
 * each test: a session's own deadline, watchPrefix() across an etcd
 * restart, a compaction and an abort.
 */
import assert from "node:assert/strict";
import { monotonicMs } from "../core/clock.ts";
import { Session } from "../core/session.ts";
import { type RawKv, watchPrefix } from "../core/watch.ts";
import { waitFor } from "./helpers/cluster.ts";
import { withEtcd } from "./helpers/etcd_env.ts";

Deno.test("Session aborts by its own deadline when etcd stops answering", async () => {
  await withEtcd(async (store, _restart, etcdPid) => {
    const s = await Session.open(store, { ttlSeconds: 2, marginMs: 500 });
    try {
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(!s.signal.aborted, "alive while keep-alives succeed");
      assert.ok(s.deadline > monotonicMs());
      // Freeze etcd: keep-alives cannot be acknowledged.
      const pid = etcdPid();
      Deno.kill(pid, "SIGSTOP");
      const frozen = Date.now();
      try {
        await waitFor("session abort", () => s.signal.aborted, 5000, 20);
        const after = Date.now() - frozen;
        // Deadline = last acknowledged keep-alive + TTL - margin <= 1.5 s.
        assert.ok(after <= 1600, `aborted ${after} ms after the freeze`);
        assert.match(String(s.signal.reason), /deadline passed/);
      } finally {
        Deno.kill(pid, "SIGCONT");
      }
    } finally {
      await s.close();
    }
  });
});

Deno.test("watchPrefix() delivers events and resumes after an etcd restart", async () => {
  await withEtcd(async (store, restart) => {
    const ac = new AbortController();
    const seen = new Map<string, string>();
    let resets = 0;
    const done = watchPrefix(store, "w/", {
      signal: ac.signal,
      retryMs: 50,
      onReset: (items: RawKv[]) => {
        resets++;
        seen.clear();
        for (const it of items) seen.set(it.key, it.value);
      },
      onEvent: (ev) => {
        if (ev.type === "put") seen.set(ev.key, ev.value);
        else seen.delete(ev.key);
      },
    });
    try {
      await store.txn().put("w/a", 1).commit();
      await waitFor("put a", () => seen.get("w/a") === "1");
      await restart();
      await waitFor(
        "etcd back",
        async () => (await store.txn().put("w/b", 2).commit()).ok,
        10_000,
        100,
      );
      await waitFor(
        "put b after restart",
        () => seen.get("w/b") === "2",
        10_000,
      );
      await store.txn().delete("w/a").commit();
      await waitFor("delete a", () => !seen.has("w/a"), 10_000);
      assert.ok(resets >= 1);
    } finally {
      ac.abort();
      await done;
    }
  });
});

Deno.test("watchPrefix() lists again when its start revision was compacted", async () => {
  await withEtcd(async (store) => {
    const ac = new AbortController();
    let resets = 0;
    const seen = new Set<string>();
    // Compact right after the first listing, before the watch is created.
    const done = watchPrefix(store, "c/", {
      signal: ac.signal,
      retryMs: 50,
      onReset: async (items) => {
        resets++;
        seen.clear();
        for (const it of items) seen.add(it.key);
        if (resets === 1) {
          for (let i = 0; i < 5; i++) {
            await store.txn().put(`c/${i}`, i).commit();
          }
          const r = await store.txn().put("other", 1).commit();
          await store.client.kv.compact({
            revision: r.revision,
            physical: true,
          });
        }
      },
      onEvent: (ev) => {
        if (ev.type === "put") seen.add(ev.key);
      },
    });
    try {
      await waitFor("re-list after compaction", () => resets >= 2, 10_000);
      await waitFor("all keys seen", () => seen.size === 5, 5000);
    } finally {
      ac.abort();
      await done;
    }
  });
});

Deno.test("watchPrefix() returns when its signal aborts while it lists or creates the watch", async () => {
  await withEtcd(async (store) => {
    // The worker's placement cache stops this early when the worker is
    // refused at start (a host name in use by another machine).
    for (const afterMs of [0, 1, 2, 5, 10, 20]) {
      const ac = new AbortController();
      const done = watchPrefix(store, "a/", {
        signal: ac.signal,
        onReset: () => {},
        onEvent: () => {},
      });
      await new Promise((r) => setTimeout(r, afterMs));
      ac.abort();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hung = new Promise<string>((r) => {
        timer = setTimeout(() => r("still running"), 3000);
      });
      const r = await Promise.race([done.then(() => "returned"), hung]);
      clearTimeout(timer);
      assert.equal(r, "returned", `aborted after ${afterMs} ms`);
    }
  });
});
