/**
 * Edge cases of the paged readers (core/store_page.ts) on a real etcd,
 * through the task listing's time keys (resources/tasks/list.ts
 * `taskTimes`): tasks created faster than a page reads, a read budget spent
 * on tasks a filter skips, tasks exactly on window boundaries, empty
 * windows over decades, clocks ahead, and tokens whose task was deleted.
 * Following the tokens must list every task that exists throughout exactly
 * once, newest first, and a page ends the listing only when nothing older
 * exists.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import {
  ascendingPage,
  descendingPage,
  PAGE_SCAN_MAX,
  type PageOptions,
} from "../core/store_page.ts";
import { newTask } from "../core/task_doc.ts";
import { taskTimes } from "../resources/tasks/list.ts";
import { withEtcd } from "./helpers/etcd_env.ts";
import { countReads, putAll, taskId } from "./helpers/pages.ts";

const task = (id: string, owner = "alice"): Task => ({
  ...newTask({ kind: "vm.create", target: "any", payload: {}, owner }),
  id,
});

async function putTasks(store: Store, ids: string[], owner = "alice") {
  await putAll(store, ids.map((id) => [keys.task(id), task(id, owner)]));
}

async function clear(store: Store) {
  for (const k of await store.keys(keys.tasks)) {
    await store.txn().delete(k).commit();
  }
}

/** Every page of a newest-first listing, following `next` to the end. */
async function follow(
  store: Store,
  opts: Omit<PageOptions<Task>, "position">,
  between: () => Promise<void> = () => Promise.resolve(),
): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let position: string | undefined;
  for (let pages = 1;; pages++) {
    const p = await descendingPage(store, keys.tasks, Task, {
      ...taskTimes,
      ...opts,
      position,
    });
    ids.push(...p.items.map((kv) => kv.value.id));
    if (p.next === null) return { ids, pages };
    assert.ok(position === undefined || p.next < position, "no progress");
    position = p.next;
    assert.ok(pages < 10_000, "pages never end");
    await between();
  }
}

const newestFirst = (ids: string[]) => [...ids].sort().reverse();

Deno.test("descendingPage() keeps a token and lists every older task once while tasks arrive faster than it reads", () =>
  withEtcd(async (store) => {
    const old = Array.from(
      { length: 30 },
      (_, n) => taskId(Date.now() - 3_600_000 - n * 1_000, n),
    );
    await putTasks(store, old);
    // Another API replica creates a batch of tasks right after each count
    // and removes it again before the next: every read of the newest window
    // finds more keys than its count said.
    const countAt = store.countAt.bind(store);
    let batch: string[] = [];
    let batches = 0;
    store.countAt = async (...args: Parameters<Store["countAt"]>) => {
      const txn = store.txn();
      for (const id of batch) txn.delete(keys.task(id));
      await txn.commit();
      const n = await countAt(...args);
      batch = Array.from(
        { length: 101 },
        (_, i) => taskId(Date.now(), 1_000_000 + batches * 1_000 + i),
      );
      batches++;
      await putTasks(store, batch, "bob");
      return n;
    };
    try {
      const first = await descendingPage(store, keys.tasks, Task, {
        ...taskTimes,
        limit: 10,
        match: (t) => t.owner === "alice",
      });
      assert.ok(
        first.next !== null || first.items.length === old.length,
        "the first page says it is the last while older tasks exist",
      );
      const { ids } = await follow(store, {
        limit: 10,
        match: (t) => t.owner === "alice",
      });
      assert.deepEqual(ids, newestFirst(old));
    } finally {
      store.countAt = countAt;
    }
  }));

Deno.test("descendingPage() spends its read budget on skipped tasks and still reaches every old match once", () =>
  withEtcd(async (store) => {
    const now = Date.now();
    // 3,000 tasks of bob in the last 30 s (one first window, more than one
    // page may read), and alice's five from a year ago.
    const recent = Array.from(
      { length: 3_000 },
      (_, n) => taskId(now - Math.floor(n * 10), n),
    );
    const mine = Array.from(
      { length: 5 },
      (_, n) => taskId(now - 365 * 86_400_000 - n * 60_000, 10_000 + n),
    );
    await putTasks(store, recent, "bob");
    await putTasks(store, mine, "alice");
    const seen = countReads(store);
    let worst = 0;
    const { ids, pages } = await follow(
      store,
      { limit: 3, match: (t) => t.owner === "alice" },
      () => {
        worst = Math.max(worst, seen.keys);
        seen.keys = 0;
        return Promise.resolve();
      },
    );
    assert.deepEqual(ids, newestFirst(mine));
    assert.ok(pages >= 3, `${pages} pages`);
    assert.ok(worst <= PAGE_SCAN_MAX, `a page read ${worst} keys`);
  }));

Deno.test("descendingPage() lists tasks on window boundaries, in bursts, decades apart and ahead of the clock exactly once", () =>
  withEtcd(async (store) => {
    const now = Date.now();
    const ids: string[] = [];
    // Every millisecond of the last 400 ms holds the key a window starts at
    // (`t-<ms>` itself) and one just after it, so every boundary has a task.
    for (let ms = now - 400; ms <= now; ms++) {
      const at = `t-${ms.toString(36).padStart(9, "0")}`;
      ids.push(at, `${at}-00000000`);
    }
    // A burst of 250 in one millisecond, empty decades, the first
    // milliseconds of the epoch, and a replica whose clock runs a day ahead.
    for (let n = 0; n < 250; n++) ids.push(taskId(now - 7_200_000, n));
    ids.push(taskId(1, 0), taskId(0, 0), `t-${"0".repeat(9)}`);
    ids.push(taskId(now - 40 * 365 * 86_400_000, 0));
    ids.push(taskId(now + 86_400_000, 0), taskId(now + 86_400_000, 1));
    await putTasks(store, ids);
    for (const limit of [1, 7, 100, 1_000]) {
      const got = await follow(store, { limit });
      assert.deepEqual(got.ids, newestFirst(ids), `limit ${limit}`);
    }
    const odd = (t: Task) => t.id.endsWith("1");
    assert.deepEqual(
      (await follow(store, { limit: 9, match: odd })).ids,
      newestFirst(ids.filter((id) => id.endsWith("1"))),
    );
    // Only the empty decades and the epoch's first tasks: a few pages.
    await clear(store);
    await putTasks(store, [taskId(0, 0), taskId(1, 1)]);
    const sparse = await follow(store, { limit: 1 });
    assert.deepEqual(sparse.ids, [taskId(1, 1), taskId(0, 0)]);
    assert.ok(sparse.pages <= 3, `${sparse.pages} pages`);
    await clear(store);
    assert.deepEqual(await follow(store, { limit: 5 }), { ids: [], pages: 1 });
  }));

Deno.test("a page token still works after its last task was deleted, newest first and oldest first", () =>
  withEtcd(async (store) => {
    const now = Date.now();
    const ids = Array.from({ length: 40 }, (_, n) => taskId(now - n * 500, n));
    // Five in the millisecond of the tenth newest, so a token may stop
    // inside a burst.
    for (let n = 0; n < 5; n++) ids.push(taskId(now - 9 * 500, 100 + n));
    await putTasks(store, ids);
    const all = newestFirst(ids);
    for (const limit of [1, 10, 12]) {
      const p = await descendingPage(store, keys.tasks, Task, {
        ...taskTimes,
        limit,
      });
      const listed = p.items.map((kv) => kv.value.id);
      assert.deepEqual(listed, all.slice(0, limit));
      // The task the token stops at, and the next older one, are deleted.
      const gone = all.slice(limit - 1, limit + 1);
      await store.txn().delete(keys.task(gone[0])).delete(keys.task(gone[1]))
        .commit();
      const rest: string[] = [];
      let position = p.next!;
      for (;;) {
        const q = await descendingPage(store, keys.tasks, Task, {
          ...taskTimes,
          limit,
          position,
        });
        rest.push(...q.items.map((kv) => kv.value.id));
        if (q.next === null) break;
        position = q.next;
      }
      assert.deepEqual(rest, all.slice(limit + 1), `limit ${limit}`);
      await putTasks(store, gone);

      const a = await ascendingPage(store, keys.tasks, Task, { limit });
      const up = [...all].reverse();
      assert.deepEqual(a.items.map((kv) => kv.value.id), up.slice(0, limit));
      const upGone = up.slice(limit - 1, limit + 1);
      await store.txn().delete(keys.task(upGone[0]))
        .delete(keys.task(upGone[1])).commit();
      const b = await ascendingPage(store, keys.tasks, Task, {
        limit: 1_000,
        position: a.next!,
      });
      assert.deepEqual(b.items.map((kv) => kv.value.id), up.slice(limit + 1));
      assert.equal(b.next, null);
      await putTasks(store, upGone);
    }
  }));
