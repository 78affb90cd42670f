/**
 * The task queue (claim, complete, fail, resume, backoff) against a real
 * etcd started for each test.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Claim, Task, Vm } from "../core/schemas.ts";
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
import { grant, withEtcd } from "./helpers/etcd_env.ts";

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
