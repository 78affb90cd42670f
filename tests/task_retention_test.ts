/**
 * Task retention (issue 13) on a real etcd: the maintenance round with a
 * short retention deletes finished tasks past it, keeps the newest old
 * finished task of each existing resource, never touches unfinished or
 * recent ones, leaves every other key as it was, and writes nothing once
 * its lock is gone. A scheduled round runs once per round id; its round
 * key expires with its lease.
 */
import assert from "node:assert/strict";
import { ConfigSchema } from "../core/config.ts";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { newTask } from "../tasks/queue.ts";
import { maintenanceOnce } from "../tasks/maintenance_round.ts";
import { collectTasks, PAGE } from "../tasks/retention.ts";
import { transition } from "../tasks/state.ts";
import { dump } from "./helpers/cluster.ts";
import { withEtcd } from "./helpers/etcd_env.ts";

const MIN = 60_000;
let seq = 0;

/**
 * A task about `payload` created `createdAgo` ms ago, in `state`, last
 * written `finishedAgo` ms ago; its id sorts by that creation time.
 */
function task(
  now: number,
  payload: Record<string, unknown>,
  createdAgo: number,
  state: Task["state"] = "succeeded",
  finishedAgo = createdAgo - 1000,
): Task {
  const created = new Date(now - createdAgo);
  const t = newTask({ kind: "vm.start", target: "h1", payload, now: created });
  const id = `t-${created.getTime().toString(36).padStart(9, "0")}-${
    (seq++).toString(16).padStart(8, "0")
  }`;
  const queued = { ...t, id };
  if (state === "queued") return queued;
  const running = transition(queued, "running", { worker: "h1", now: created });
  if (state === "running") return running;
  return transition(running, state, {
    worker: "h1",
    now: new Date(now - finishedAgo),
  });
}

async function put(store: Store, docs: [string, unknown][]) {
  for (let i = 0; i < docs.length; i += 50) {
    const txn = store.txn();
    for (const [k, v] of docs.slice(i, i + 50)) txn.put(k, v);
    assert.ok((await txn.commit()).ok);
  }
}

const settings = (retentionSeconds: number) => ({
  maintenance: {
    ...ConfigSchema.shape.maintenance.parse(undefined),
    taskRetentionSeconds: retentionSeconds,
  },
});

Deno.test("the maintenance round deletes finished tasks past the retention and keeps the newest of each existing resource", async () => {
  await withEtcd(async (store) => {
    const now = Date.now();
    const vm = (id: string) => ({ vm: id });
    const keep = {
      // vm-a exists: its newest old task stays.
      aNewest: task(now, vm("vm-a"), 28 * MIN),
      // An unfinished task is never touched, however old.
      aRunning: task(now, vm("vm-a"), 40 * MIN, "running"),
      // Finished within the retention (a long task): kept.
      bRecent: task(now, vm("vm-b"), 30 * MIN, "succeeded", 10_000),
      // Created after the cutoff: not even read.
      aFresh: task(now, vm("vm-a"), 5_000),
      // The host exists: its newest old task stays.
      hNewest: task(now, { host: "h1" }, 20 * MIN),
      // The image exists.
      iNewest: task(now, { image: "alice/deb" }, 20 * MIN, "cancelled"),
    };
    const gone = {
      // ... and its older ones go.
      aOld1: task(now, vm("vm-a"), 30 * MIN),
      aOld2: task(now, vm("vm-a"), 29 * MIN, "failed"),
      hOld: task(now, { host: "h1" }, 21 * MIN),
      // vm-gone was deleted: all its old tasks go, the newest too.
      gCreate: task(now, vm("vm-gone"), 30 * MIN),
      gDelete: task(now, vm("vm-gone"), 25 * MIN),
      // A task about no resource (an image's stored file).
      noResource: task(now, { store: "file", storedAs: "x" }, 30 * MIN),
      iOld: task(now, { image: "alice/deb" }, 21 * MIN),
    };
    // More than a page and many batches of one deleted VM's history.
    const many = Array.from(
      { length: PAGE + 67 },
      (_, i) => task(now, vm("vm-churn"), 60 * MIN - i * 100),
    );
    await put(store, [
      [keys.vm("vm-a"), { id: "vm-a" }],
      [keys.host("h1"), { name: "h1" }],
      [keys.image("alice/deb"), { name: "deb" }],
      [keys.alloc("h1"), { vms: ["vm-a"] }],
      ...[...Object.values(keep), ...Object.values(gone), ...many].map((
        t,
      ): [string, Task] => [keys.task(t.id), t]),
    ]);
    const before = await dump(store);

    const r = await maintenanceOnce(store, settings(10 * 60), { by: "h1" });
    assert.equal(r.ran, true, r.reason);
    const after = await dump(store);
    const tasksLeft = Object.keys(after).filter((k) => k.startsWith("task/"))
      .sort();
    assert.deepEqual(
      tasksLeft,
      Object.values(keep).map((t) => keys.task(t.id)).sort(),
    );
    assert.deepEqual(r.tasks, {
      scanned: Object.keys(keep).length - 1 + Object.keys(gone).length +
        many.length,
      rechecked: 0,
      deleted: Object.keys(gone).length + many.length,
      kept: 3,
      changed: 0,
      fenced: false,
    });
    // Everything but the deleted tasks is as it was (the round's usage and
    // owner index backfills add their marks).
    const rest = (d: Record<string, string>) =>
      Object.entries(d).filter(([k]) =>
        !k.startsWith("task/") && !k.startsWith("cron") &&
        !k.startsWith("retention/") && k !== keys.usageBackfilled &&
        k !== keys.vmOwnersBackfilled
      );
    assert.deepEqual(rest(after), rest(before));
    for (const t of Object.values(keep)) {
      assert.equal(after[keys.task(t.id)], before[keys.task(t.id)]);
    }

    // A second round finds nothing more to delete.
    const again = await maintenanceOnce(store, settings(10 * 60), {
      by: "h1",
    });
    assert.equal(again.tasks?.deleted, 0);
    // ... and reads none of what the first read: only the two it could not
    // decide on yet (unfinished, finished within the retention).
    assert.equal(again.tasks?.scanned, 0);
    assert.equal(again.tasks?.rechecked, 2);
  });
});

Deno.test("later retention passes read only new expiries: a newer expired task replaces the kept one, a gone resource's kept task goes, a pending task that expired goes", async () => {
  await withEtcd(async (store) => {
    const now = Date.now();
    const retentionMs = 10 * MIN;
    const aKept = task(now, { vm: "vm-a" }, 28 * MIN);
    const aRunning = task(now, { vm: "vm-a" }, 40 * MIN, "running");
    const hKept = task(now, { host: "h1" }, 20 * MIN);
    await put(store, [
      [keys.vm("vm-a"), { id: "vm-a" }],
      [keys.host("h1"), { name: "h1" }],
      ...[aKept, aRunning, hKept].map((t): [string, Task] => [
        keys.task(t.id),
        t,
      ]),
    ]);
    const first = await collectTasks(store, {
      retentionMs,
      now: new Date(now),
    });
    assert.deepEqual([first.scanned, first.kept, first.deleted], [3, 2, 0]);

    // Five minutes later: new expiries since the first pass's cutoff.
    const later = now + 5 * MIN;
    const aNew = task(now, { vm: "vm-a" }, 8 * MIN);
    const hGone = task(now, { host: "h1" }, 9 * MIN);
    const aDone = transition(aRunning, "succeeded", {
      worker: "h1",
      now: new Date(now - 6 * MIN),
    });
    await put(store, [
      [keys.task(aNew.id), aNew],
      [keys.task(hGone.id), hGone],
      [keys.task(aRunning.id), aDone],
    ]);
    assert.ok((await store.txn().delete(keys.host("h1")).commit()).ok);
    const second = await collectTasks(store, {
      retentionMs,
      now: new Date(later),
    });
    assert.deepEqual(
      {
        scanned: second.scanned,
        rechecked: second.rechecked,
        kept: second.kept,
        deleted: second.deleted,
      },
      { scanned: 2, rechecked: 1, kept: 1, deleted: 4 },
    );
    const left = (await store.keys(keys.tasks)).sort();
    assert.deepEqual(left, [keys.task(aNew.id)]);
    const kept = await dump(store);
    assert.equal(
      JSON.parse(kept["retention/kept/vm/vm-a"]).task,
      aNew.id,
    );
    assert.equal(kept["retention/kept/host/h1"], undefined);
  });
});

Deno.test("a retention pass reads at most maxScan tasks; the next goes on where it stopped", async () => {
  await withEtcd(async (store) => {
    const now = Date.now();
    const many = Array.from(
      { length: 250 },
      (_, i) => task(now, { vm: "vm-gone" }, 60 * MIN - i * 100),
    );
    await put(store, many.map((t): [string, Task] => [keys.task(t.id), t]));
    const passes = [];
    for (let i = 0; i < 4; i++) {
      const r = await collectTasks(store, {
        retentionMs: MIN,
        now: new Date(now),
        maxScan: 100,
      });
      passes.push([r.scanned, r.deleted]);
    }
    // The VM is gone: each pass deletes all it read.
    assert.deepEqual(passes, [[100, 100], [100, 100], [50, 50], [0, 0]]);
    assert.equal(await store.count(keys.tasks), 0);
  });
});

Deno.test("collectTasks() deletes nothing once its fence fails", async () => {
  await withEtcd(async (store) => {
    const now = Date.now();
    const old = task(now, { vm: "vm-gone" }, 30 * MIN);
    await put(store, [[keys.task(old.id), old], ["lock", { by: "other" }]]);
    const r = await collectTasks(store, {
      retentionMs: MIN,
      fence: () => store.txn().ifAbsent("lock"),
    });
    assert.equal(r.fenced, true);
    assert.equal(r.deleted, 0);
    assert.notEqual(await store.get(keys.task(old.id), Task), null);
  });
});
