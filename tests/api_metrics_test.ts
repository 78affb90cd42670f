/**
 * `/metrics` task gauges and counters against a real etcd: kept from
 * watches on `task/` and `queue/` (api/task_counts.ts, api/task_flow.ts),
 * so a scrape after task changes shows them (counts, oldest runnable age,
 * outcomes, durations, retries), and a scrape sends no etcd range request
 * however many tasks exist (counted by wrapping the real store's client).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { TaskCounts } from "../api/task_counts.ts";
import { VmPlacements } from "../api/vm_placements.ts";
import { timeEtcdRequests } from "../core/etcd_metrics.ts";
import { keys } from "../core/keys.ts";
import type { Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { newTask } from "../core/task_doc.ts";
import { transition } from "../tasks/state.ts";
import { noSanitize } from "./helpers/api.ts";
import {
  promtoolCheck,
  sample,
  scrape as scrapeApp,
} from "./helpers/api_metrics.ts";
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

const task = (kind: string, target: string, now?: Date) =>
  newTask({ kind, target, payload: {}, now });

/** Writes each version of a task in its own transaction, in order. */
async function putVersions(store: Store, versions: Task[]) {
  for (const v of versions) {
    assert.ok((await store.txn().put(keys.task(v.id), v).commit()).ok);
  }
}

Deno.test({
  name: "/metrics task gauges come from watches, not a scan per scrape",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ connect, step }) => {
      const store = connect();
      const counts = TaskCounts.start(store);
      // Every family the API process reports (api/main.ts).
      const placements = VmPlacements.start(store);
      const app = createApp({
        store,
        taskCounts: counts,
        metrics: [...placements.metrics, ...timeEtcdRequests(store)],
      });
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
          "outcomes, durations and retries come from the task changes seen",
          async () => {
            const ago = (s: number) => new Date(Date.now() - s * 1000);
            const queued = task("image.fetch", "any", ago(10));
            const run1 = {
              ...transition(queued, "running", { now: ago(9) }),
              attempts: 1,
            };
            const retry = transition(run1, "queued", { now: ago(8) });
            const run2 = {
              ...transition(retry, "running", { now: ago(7) }),
              attempts: 2,
            };
            const done = transition(run2, "succeeded");
            const lost = transition(
              transition(task("image.fetch", "any", ago(3)), "running"),
              "failed",
            );
            await putVersions(store, [queued, run1, retry, run2, done, lost]);
            // Rewritten after its end: no second outcome.
            await putVersions(store, [{ ...done, progress: "x" }]);
            const text = await waitScrape([
              'ucloud_task_outcomes_total{kind="image.fetch",outcome="succeeded"} 1',
              'ucloud_task_outcomes_total{kind="image.fetch",outcome="failed"} 1',
              'ucloud_task_retries_total{kind="image.fetch"} 1',
            ]);
            const took = sample(
              text,
              'ucloud_task_duration_seconds_sum{kind="image.fetch",outcome="succeeded"}',
            )!;
            assert.ok(took >= 9.5 && took < 15, `took ${took} s`);
            assert.equal(
              sample(
                text,
                'ucloud_task_duration_seconds_count{kind="image.fetch",outcome="failed"}',
              ),
              1,
            );
            // A replica started now lists them: history, not news.
            const later = TaskCounts.start(store);
            try {
              const other = createApp({ store, taskCounts: later });
              await later.waitReady(10_000);
              const seen = await scrapeApp(other);
              assert.ok(seen.includes("# TYPE ucloud_task_outcomes_total"));
              assert.ok(!seen.includes('kind="image.fetch",outcome='), seen);
              await promtoolCheck(seen);
            } finally {
              await later.close();
            }
          },
        );

        await step(
          "the oldest runnable task's age per target: due and unclaimed only",
          async () => {
            const old = task("vm.reboot", "h9", new Date(Date.now() - 60_000));
            const early = task("vm.reboot", "h8");
            early.notBefore = Date.now() + 3_600_000;
            const claimed = {
              ...transition(task("vm.reboot", "h7", new Date(0)), "running"),
              attempts: 1,
            };
            await putTasks(store, [old, early, claimed]);
            const text = await waitScrape([
              'ucloud_task_queue_depth{target="h7"} 1',
              'ucloud_task_queue_depth{target="h8"} 1',
              'ucloud_task_queue_depth{target="h9"} 1',
            ]);
            const age = (target: string) =>
              sample(
                text,
                `ucloud_task_queue_oldest_runnable_age_seconds{target="${target}"}`,
              );
            assert.ok(age("h9")! >= 60 && age("h9")! < 90, `${age("h9")}`);
            assert.equal(age("h8"), 0);
            assert.equal(age("h7"), 0);
            await promtoolCheck(text);
          },
        );

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
            // The other families of the API process are reported too.
            const text = await scrape();
            assert.match(
              text,
              /ucloud_etcd_request_duration_seconds_count\{operation="range"\} \d+/,
            );
            assert.ok(text.includes("# TYPE ucloud_placements_total counter"));
          },
        );
      } finally {
        await placements.close();
        await counts.close();
      }
    }),
});
