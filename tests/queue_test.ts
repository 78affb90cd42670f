/**
 * The task queue, the lease session and the watch helper against a real
 * etcd started for this file.
 */
import assert from "node:assert/strict";
import { monotonicMs } from "../core/clock.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { Claim, Task, Vm } from "../core/schemas.ts";
import { Session } from "../core/session.ts";
import { Store } from "../core/store.ts";
import { type RawKv, watchPrefix } from "../core/watch.ts";
import {
  backoff,
  claim,
  complete,
  enqueue,
  fail,
  newTask,
  resume,
  type WorkerId,
} from "../tasks/queue.ts";
import { waitFor, withCluster } from "./helpers/cluster.ts";

async function withEtcd(
  f: (
    store: Store,
    restart: () => Promise<void>,
    pid: () => number,
  ) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "uc-q-" });
  let etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({
    endpoints: [etcd.endpoint],
    prefix: "/q",
    timeoutMs: 1000,
  });
  const restart = async () => {
    await etcd.stop();
    etcd = await startEtcd({
      dataDir: dir,
      port: etcd.port,
      peerPort: etcd.peerPort,
    });
  };
  try {
    await f(store, restart, () => etcd.pid);
  } finally {
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

async function grant(store: Store, ttl = 2): Promise<string> {
  const r = await store.client.leaseClient.leaseGrant({ TTL: ttl });
  return String(r.ID);
}

Deno.test("claim() lets exactly one of 20 concurrent claimers win", async () => {
  await withEtcd(async (store) => {
    const task = newTask({ kind: "k", target: "any", payload: {} });
    assert.ok((await enqueue(store.txn(), task).commit()).ok);
    const workers: WorkerId[] = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => ({
        name: `w${i}`,
        lease: await grant(store),
      })),
    );
    const results = await Promise.all(
      workers.map((w) => claim(store, task.id, w)),
    );
    const winners = results.filter((r) => r !== null);
    assert.equal(winners.length, 1);
    const t = (await store.get(keys.task(task.id), Task))!.value;
    assert.equal(t.state, "running");
    assert.equal(t.attempts, 1);
    const c = (await store.get(keys.claim(task.id), Claim))!;
    assert.equal(c.value.worker, winners[0]!.value.worker);
    assert.equal(c.lease, c.value.lease);
  });
});

Deno.test("complete() succeeds for the holder and is refused after its lease is gone", async () => {
  await withEtcd(async (store) => {
    const a = newTask({ kind: "k", target: "h1", payload: {} });
    const b = newTask({ kind: "k", target: "h1", payload: {} });
    await enqueue(enqueue(store.txn(), a), b).commit();
    const w = { name: "h1", lease: await grant(store) };
    const ca = (await claim(store, a.id, w))!;
    const cb = (await claim(store, b.id, w))!;
    assert.ok(await complete(store, ca.value, w, { ok: 1 }));
    const done = (await store.get(keys.task(a.id), Task))!.value;
    assert.equal(done.state, "succeeded");
    assert.deepEqual(done.result, { ok: 1 });
    assert.equal(await store.get(keys.queue("h1", a.id), Task.partial()), null);
    assert.equal(await store.get(keys.claim(a.id), Claim), null);

    await store.client.leaseClient.leaseRevoke({ ID: w.lease });
    assert.equal(await complete(store, cb.value, w, {}), false);
    assert.equal(
      (await store.get(keys.task(b.id), Task))!.value.state,
      "running",
    );
    // Another worker reclaims the orphaned running task.
    const w2 = { name: "h1b", lease: await grant(store) };
    const again = (await claim(store, b.id, w2))!;
    assert.equal(again.value.attempts, 2);
    assert.match(again.value.history.at(-1)!.message!, /reclaimed/);
  });
});

Deno.test("fail() retries with backoff up to maxAttempts, then fails for good", async () => {
  await withEtcd(async (store) => {
    const t = newTask({
      kind: "k",
      target: "any",
      payload: {},
      maxAttempts: 2,
    });
    await enqueue(store.txn(), t).commit();
    const w = { name: "w", lease: await grant(store) };
    const c1 = (await claim(store, t.id, w))!;
    assert.equal(
      // Delay 30-60 s: half the capped backoff plus jitter.
      await fail(store, c1.value, w, "boom", {
        baseMs: 60_000,
        maxMs: 60_000,
      }),
      "retry",
    );
    const q = (await store.get(keys.task(t.id), Task))!.value;
    assert.equal(q.state, "queued");
    assert.ok(q.notBefore > Date.now() + 20_000);
    assert.equal(await claim(store, t.id, w), null, "not due yet");
    const c2 = (await claim(store, t.id, w, new Date(q.notBefore + 1)))!;
    assert.equal(c2.value.attempts, 2);
    assert.equal(await fail(store, c2.value, w, "boom again"), "failed");
    const f = (await store.get(keys.task(t.id), Task))!.value;
    assert.equal(f.state, "failed");
    assert.equal(f.error, "boom again");
    assert.equal(await store.count(keys.queues), 0);
    assert.equal(await claim(store, t.id, w), null);
  });
});

Deno.test("claim() fails a task past maxAttempts with the reason", async () => {
  await withEtcd(async (store) => {
    const t = newTask({
      kind: "k",
      target: "h1",
      payload: {},
      maxAttempts: 2,
    });
    await enqueue(store.txn(), t).commit();
    // Every claimer dies while running it: its lease ends, the claim goes.
    for (const n of [1, 2]) {
      const w = { name: `h1-${n}`, lease: await grant(store) };
      const c = (await claim(store, t.id, w))!;
      assert.equal(c.value.state, "running");
      assert.equal(c.value.attempts, n);
      await store.revokeLease(w.lease);
    }
    const w3 = { name: "h1-3", lease: await grant(store) };
    const gaveUp = (await claim(store, t.id, w3))!;
    assert.equal(gaveUp.value.state, "failed");
    assert.equal(gaveUp.value.attempts, 2);
    assert.match(
      gaveUp.value.error!,
      /^gave up after 2 attempts: the worker running it \(last h1-2\) died or lost its lease/,
    );
    const doc = (await store.get(keys.task(t.id), Task))!;
    assert.equal(doc.value.state, "failed");
    assert.equal(doc.value.error, gaveUp.value.error);
    assert.equal(doc.modRevision, gaveUp.modRevision);
    assert.equal(doc.value.history.at(-1)!.message, gaveUp.value.error);
    assert.equal(await store.count(keys.queues), 0);
    assert.equal(await store.get(keys.claim(t.id), Claim), null);
    assert.equal(await claim(store, t.id, w3), null, "finished for good");
  });
});

Deno.test("claim() gives up on a task only once while many claimers race", async () => {
  await withEtcd(async (store) => {
    const t = newTask({
      kind: "k",
      target: "any",
      payload: {},
      maxAttempts: 1,
    });
    await enqueue(store.txn(), t).commit();
    const dead = { name: "dead", lease: await grant(store) };
    await claim(store, t.id, dead);
    await store.revokeLease(dead.lease);
    const workers = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => ({
        name: `w${i}`,
        lease: await grant(store),
      })),
    );
    const results = await Promise.all(
      workers.map((w) => claim(store, t.id, w)),
    );
    const got = results.filter((r) => r !== null);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.value.state, "failed");
    const doc = (await store.get(keys.task(t.id), Task))!.value;
    assert.equal(doc.history.filter((e) => e.state === "failed").length, 1);
  });
});

Deno.test("resume() fails a task past maxAttempts with the reason and drops the claim", async () => {
  await withEtcd(async (store) => {
    const t = newTask({
      kind: "k",
      target: "h1",
      payload: {},
      maxAttempts: 2,
    });
    await enqueue(store.txn(), t).commit();
    // One lease, adopted by each restarted worker process that crashed.
    const w = { name: "h1", lease: await grant(store, 10) };
    assert.equal((await claim(store, t.id, w))!.value.attempts, 1);
    assert.equal((await resume(store, t.id, w))!.value.attempts, 2);
    const other = { name: "h2", lease: await grant(store) };
    assert.equal(await resume(store, t.id, other), null, "not its claim");
    const gaveUp = (await resume(store, t.id, w))!;
    assert.equal(gaveUp.value.state, "failed");
    assert.match(gaveUp.value.error!, /^gave up after 2 attempts/);
    assert.equal(
      (await store.get(keys.task(t.id), Task))!.value.state,
      "failed",
    );
    assert.equal(await store.count(keys.queues), 0);
    assert.equal(await store.get(keys.claim(t.id), Claim), null);
    assert.equal(await resume(store, t.id, w), null);
  });
});

Deno.test({
  name:
    "a worker that reclaims a task past maxAttempts fails it and shows the reason on its VM",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withCluster(async (c) => {
      const { store } = c;
      const at = new Date().toISOString();
      const vm: Vm = {
        id: "vm-crashy",
        owner: "alice",
        spec: { name: "crashy", cpus: 1, memory: 128, image: "tiny" },
        nics: [],
        desired: "running",
        status: { phase: "starting", host: "h1", updatedAt: at },
        createdAt: at,
      };
      const t = newTask({
        kind: "vm.start",
        target: "h1",
        payload: { vm: vm.id },
        maxAttempts: 1,
      });
      await enqueue(store.txn().put(keys.vm(vm.id), vm), t).commit();
      // The only attempt's worker died while running it.
      const dead = { name: "h1", lease: await grant(store) };
      assert.ok(await claim(store, t.id, dead));
      await store.revokeLease(dead.lease);

      c.env.UCLOUD_DRIVER = "sim";
      await c.addWorker({ name: "h1" });
      const failed = await waitFor("the VM failed", async () => {
        const v = await store.get(keys.vm(vm.id), Vm);
        return v?.value.status.phase === "failed" ? v.value : null;
      });
      assert.match(
        failed.status.reason!,
        /^vm\.start failed: gave up after 1 attempt: the worker running it \(last h1\) died/,
      );
      const task = (await store.get(keys.task(t.id), Task))!.value;
      assert.equal(task.state, "failed");
      assert.equal(task.attempts, 1);
    }, { guest: false });
  },
});

Deno.test("backoff() grows exponentially, is capped and jittered", () => {
  assert.equal(backoff(1, 100, 10_000, () => 1), 100);
  assert.equal(backoff(3, 100, 10_000, () => 1), 400);
  assert.equal(backoff(3, 100, 10_000, () => 0), 200);
  assert.equal(backoff(30, 100, 10_000, () => 1), 10_000);
});

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
