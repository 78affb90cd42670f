/**
 * `/metrics` task gauges against a real etcd: kept from watches on `task/`
 * and `queue/` (api/task_counts.ts), so a scrape after task changes shows
 * them, and a scrape sends no etcd range request however many tasks exist
 * (counted by wrapping the real store's client).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { TaskCounts } from "../api/task_counts.ts";
import { keys } from "../core/keys.ts";
import type { Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { newTask } from "../core/task_doc.ts";
import { noSanitize } from "./helpers/api.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import { waitFor } from "./helpers/cluster.ts";

/** Counts the range requests `store` sends, by wrapping its client. */
function countRanges(store: Store) {
  const kv = store.client.kv;
  const range = kv.range.bind(kv);
  const seen = { requests: 0 };
  kv.range = (...args: Parameters<typeof range>) => {
    seen.requests++;
    return range(...args);
  };
  return seen;
}

/** Writes tasks and their queue entries in transactions of 50 each. */
async function putTasks(store: Store, tasks: Task[]) {
  for (let i = 0; i < tasks.length; i += 50) {
    const txn = store.txn();
    for (const t of tasks.slice(i, i + 50)) {
      txn.put(keys.task(t.id), t).put(keys.queue(t.target, t.id), {
        notBefore: 0,
      });
    }
    assert.ok((await txn.commit()).ok);
  }
}

const task = (kind: string, target: string) =>
  newTask({ kind, target, payload: {} });

Deno.test({
  name: "/metrics task gauges come from watches, not a scan per scrape",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ connect, step }) => {
      const store = connect();
      const counts = TaskCounts.start(store);
      const app = createApp({ store, taskCounts: counts });
      // From loopback: the default api.metrics.allow.
      const scrape = async () =>
        await (await app.request("/metrics", {}, {
          remoteAddr: { hostname: "127.0.0.1" },
        })).text();
      const waitScrape = (lines: string[], absent: string[] = []) =>
        waitFor(lines.join(", "), async () => {
          const text = await scrape();
          return lines.every((l) => text.includes(l)) &&
            absent.every((l) => !text.includes(l)) && text;
        }, 20_000);
      try {
        await step("a scrape after task changes reflects them", async () => {
          const tasks = [
            ...Array.from({ length: 30 }, () => task("vm.create", "any")),
            ...Array.from({ length: 12 }, () => task("vm.stop", "h1")),
          ];
          await putTasks(store, tasks);
          await waitScrape([
            'ucloud_tasks{kind="vm.create",state="queued"} 30',
            'ucloud_tasks{kind="vm.stop",state="queued"} 12',
            'ucloud_task_queue_depth{target="any"} 30',
            'ucloud_task_queue_depth{target="h1"} 12',
          ]);
          // 10 creates succeed (leaving the queue), 5 stops are deleted.
          const txn = store.txn();
          for (const t of tasks.slice(0, 10)) {
            txn.put(keys.task(t.id), { ...t, state: "succeeded" })
              .delete(keys.queue(t.target, t.id));
          }
          for (const t of tasks.slice(30, 35)) {
            txn.delete(keys.task(t.id)).delete(keys.queue(t.target, t.id));
          }
          assert.ok((await txn.commit()).ok);
          await waitScrape([
            'ucloud_tasks{kind="vm.create",state="queued"} 20',
            'ucloud_tasks{kind="vm.create",state="succeeded"} 10',
            'ucloud_tasks{kind="vm.stop",state="queued"} 7',
            'ucloud_task_queue_depth{target="any"} 20',
            'ucloud_task_queue_depth{target="h1"} 7',
          ]);
          // The last of a kind and state goes: its series goes with it.
          const last = store.txn();
          for (const t of tasks.slice(35)) {
            last.delete(keys.task(t.id)).delete(keys.queue(t.target, t.id));
          }
          assert.ok((await last.commit()).ok);
          await waitScrape(
            ['ucloud_tasks{kind="vm.create",state="queued"} 20'],
            [
              'ucloud_tasks{kind="vm.stop"',
              'ucloud_task_queue_depth{target="h1"}',
            ],
          );
        });

        await step(
          "a scrape sends no etcd range request, with 30 or 1,030 tasks",
          async () => {
            const seen = countRanges(store);
            const perScrape = async () => {
              const before = seen.requests;
              for (let i = 0; i < 5; i++) await scrape();
              return (seen.requests - before) / 5;
            };
            const few = await perScrape();
            await putTasks(
              store,
              Array.from({ length: 1_000 }, () => task("vm.start", "h2")),
            );
            await waitScrape([
              'ucloud_tasks{kind="vm.start",state="queued"} 1000',
            ]);
            const many = await perScrape();
            assert.equal(few, 0);
            assert.equal(many, 0);
          },
        );
      } finally {
        await counts.close();
      }
    }),
});
