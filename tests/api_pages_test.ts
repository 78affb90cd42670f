/**
 * Paged listings of `GET /v1/vms` and `GET /v1/tasks` against a real etcd:
 * pages cover every document exactly once while others are added and
 * removed, tasks stay newest first across pages (ids spread over a year and
 * a burst in one millisecond), a page reads a bounded number of keys, bad
 * `limit`/`continue` are 400 naming the field, and a user sees no other
 * user's VM or task through filters or tokens.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { apiClient } from "../cli/client.ts";
import { connect } from "../cli/http.ts";
import { keys } from "../core/keys.ts";
import { Task, type Vm } from "../core/schemas.ts";
import { PAGE_SCAN_MAX } from "../core/store_page.ts";
import { newTask } from "../core/task_doc.ts";
import { assertError, call, dump, headerAuth } from "./helpers/api.ts";
import { noSanitize } from "./helpers/api.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import { allPages, countReads, putAll, taskId, vmId } from "./helpers/pages.ts";

const ADMIN = { "x-user": "root/admin" };
const as = (name: string) => ({ "x-user": name });

Deno.test({
  name: "api: paged GET /v1/vms and /v1/tasks against a real etcd",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ fresh, step, create }) => {
      const { store, app } = fresh({ auth: headerAuth });
      const template = (await create(app, undefined, { headers: as("alice") }))
        .vm;
      await store.txn().delete(keys.vm(template.id)).commit();
      const vm = (n: number, owner: string): [string, Vm] => [
        keys.vm(vmId(n)),
        {
          ...template,
          id: vmId(n),
          spec: { ...template.spec, name: `v${n}` },
          owner,
        },
      ];
      const stable = Array.from(
        { length: 240 },
        (_, n) => vm(2 * n, n % 3 === 0 ? "bob" : "alice"),
      );
      const churn = Array.from({ length: 60 }, (_, n) => vm(2 * n + 1, "bob"));
      await putAll(store, [...stable, ...churn]);
      for (const k of await store.keys(keys.tasks)) {
        await store.txn().delete(k).commit();
      }

      await step(
        "VM pages list every VM once while VMs are added and removed",
        async () => {
          let added = 0;
          const between = async () => {
            // Removes two churn VMs and adds three new ones between pages.
            const gone = churn.splice(0, 2);
            const txn = store.txn();
            for (const [k] of gone) txn.delete(k);
            for (let i = 0; i < 3; i++) {
              const [k, v] = vm(1_000 + added++, "bob");
              txn.put(k, v);
            }
            assert.ok((await txn.commit()).ok);
          };
          for (const who of ["root/admin", "bob"]) {
            const { pages } = await allPages<Vm>(
              app,
              "/v1/vms?limit=9",
              { "x-user": who },
              between,
            );
            const ids = pages.flat().map((v) => v.id);
            assert.equal(new Set(ids).size, ids.length, "a VM listed twice");
            assert.deepEqual(ids, [...ids].sort(), "oldest first");
            const want = stable.filter(([, v]) =>
              who === "root/admin" || v.owner === "bob"
            ).map(([, v]) => v.id);
            for (const id of want) assert.ok(ids.includes(id), id);
            for (const p of pages) assert.ok(p.length <= 9);
            if (who === "bob") {
              assert.ok(pages.flat().every((v) => v.owner === "bob"));
            }
          }
          // The first page of an owner filter, and the default limit of 100.
          const r = await call(app, "GET", "/v1/vms?owner=alice", {
            headers: ADMIN,
          });
          assert.equal(r.body.items.length, 100);
          assert.ok(r.body.items.every((v: Vm) => v.owner === "alice"));
          assert.equal(typeof r.body.continue, "string");
        },
      );

      await step(
        "a user's VM page reads at most PAGE_SCAN_MAX keys of others' VMs",
        async () => {
          const { store: big, app: bigApp } = fresh({ auth: headerAuth });
          const others = Array.from(
            { length: 2_500 },
            (_, n) => vm(n, "alice"),
          );
          await putAll(big, [...others, vm(9_999_998, "carol")]);
          const seen = countReads(big);
          const { pages } = await allPages<Vm>(
            bigApp,
            "/v1/vms",
            as("carol"),
            () => {
              // One page for the token check, a few more for the listing.
              assert.ok(seen.keys <= PAGE_SCAN_MAX + 1, String(seen.keys));
              seen.keys = 0;
              return Promise.resolve();
            },
          );
          assert.deepEqual(pages.flat().map((v) => v.id), [vmId(9_999_998)]);
          assert.ok(pages.length >= 3, `${pages.length} pages`);
        },
      );

      await step(
        "the CLI's client follows continue tokens: vm list shows every VM",
        async () => {
          const { store: big, app: bigApp } = fresh({ auth: headerAuth });
          await putAll(big, [
            ...Array.from({ length: 2_100 }, (_, n) => vm(n, "alice")),
            vm(9_999_999, "carol"),
          ]);
          const client = (user: string) =>
            apiClient(connect(
              "http://api",
              (url, init) => Promise.resolve(bigApp.request(url, init)),
              { headers: () => Promise.resolve({ "x-user": user }) },
            ));
          const all = await client("root/admin").vms.list();
          assert.equal(all.items.length, 2_101);
          assert.equal(new Set(all.items.map((v) => v.id)).size, 2_101);
          assert.deepEqual(
            (await client("carol").vms.list()).items.map((v) => v.id),
            [vmId(9_999_999)],
          );
        },
      );

      const now = Date.now();
      const YEAR = 365 * 86_400_000;
      const tasks: Task[] = [];
      const taskOf = (ms: number, n: number, owner: string, vmN: number) => ({
        ...newTask({
          kind: n % 4 === 0 ? "vm.stop" : "vm.create",
          target: n % 5 === 0 ? "h1" : "any",
          payload: { vm: vmId(vmN) },
          owner,
        }),
        id: taskId(ms, n),
        ...(n % 7 === 0 ? { state: "failed" as const } : {}),
      });
      // Spread over a year, and 250 in one millisecond.
      for (let n = 0; n < 200; n++) {
        const ms = now - Math.floor(YEAR * (n / 200) ** 3);
        tasks.push(taskOf(ms, n, n % 3 === 0 ? "bob" : "alice", n % 10));
      }
      for (let n = 200; n < 450; n++) {
        tasks.push(taskOf(now - 3_600_000, n, n % 2 ? "bob" : "alice", 3));
      }
      await putAll(store, tasks.map((t) => [keys.task(t.id), t]));
      const newestFirst = (ts: Task[]) =>
        [...ts].sort((a, b) => a.id < b.id ? 1 : -1).map((t) => t.id);

      await step(
        "task pages are newest first and list every task once while tasks change",
        async () => {
          const doomed = tasks.filter((_, n) => n % 11 === 5);
          const kept = tasks.filter((_, n) => n % 11 !== 5);
          let extra = 0;
          const between = async () => {
            const txn = store.txn();
            const gone = doomed.pop();
            if (gone) txn.delete(keys.task(gone.id));
            const t = taskOf(Date.now(), 10_000 + extra++, "bob", 1);
            txn.put(keys.task(t.id), t);
            assert.ok((await txn.commit()).ok);
          };
          const { pages } = await allPages<Task>(
            app,
            "/v1/tasks?limit=13",
            ADMIN,
            between,
          );
          const ids = pages.flat().map((t) => t.id);
          assert.equal(new Set(ids).size, ids.length, "a task listed twice");
          assert.deepEqual(ids, [...ids].sort().reverse(), "newest first");
          for (const t of kept) assert.ok(ids.includes(t.id), t.id);
          // Put back what was removed, for the next steps.
          await putAll(store, doomed.map((t) => [keys.task(t.id), t]));
        },
      );

      await step("task filters page on the server", async () => {
        const all = await store.list(keys.tasks, Task);
        const every = all.items.map((kv) => kv.value);
        const cases: [string, string, (t: Task) => boolean][] = [
          ["bob", "", (t) => t.owner === "bob"],
          ["bob", "&state=failed", (t) =>
            t.owner === "bob" && t.state === "failed"],
          ["root/admin", "&kind=vm.stop&target=h1", (t) =>
            t.kind === "vm.stop" && t.target === "h1"],
          ["alice", `&vm=${vmId(3)}`, (t) =>
            t.owner === "alice" && t.payload.vm === vmId(3)],
        ];
        for (const [who, q, keep] of cases) {
          const { pages } = await allPages<Task>(
            app,
            `/v1/tasks?limit=7${q}`,
            { "x-user": who },
          );
          assert.deepEqual(
            pages.flat().map((t) =>
              t.id
            ),
            newestFirst(every.filter(keep)),
            `${who} ${q}`,
          );
        }
        // The CLI's client: the newest N over as many pages as it takes.
        const cli = apiClient(connect(
          "http://api",
          (url, init) =>
            Promise.resolve(app.request(url, init)),
          {
            headers: () =>
              Promise.resolve(ADMIN),
          },
        ));
        for (const limit of [undefined, 3, 1_500]) {
          assert.deepEqual(
            (await cli.tasks.list({ limit })).items.map((t) =>
              t.id
            ),
            newestFirst(every).slice(0, limit ?? 100),
          );
        }
        // The first page without a limit: the 100 newest.
        const r = await call(app, "GET", "/v1/tasks", { headers: ADMIN });
        assert.deepEqual(
          r.body.items.map((t: Task) =>
            t.id
          ),
          newestFirst(every).slice(0, 100),
        );
      });

      await step(
        "a task page reads a bounded number of keys however many tasks exist",
        async () => {
          const cost = async (count: number) => {
            const { store: s, app: a } = fresh({ auth: headerAuth });
            const docs: [string, unknown][] = [];
            for (let n = 0; n < count; n++) {
              const t = taskOf(now - n * 200, n, "alice", 1);
              docs.push([keys.task(t.id), t]);
            }
            await putAll(s, docs);
            const seen = countReads(s);
            const r = await call(a, "GET", "/v1/tasks?limit=20", {
              headers: ADMIN,
            });
            assert.equal(r.body.items.length, 20);
            return { ...seen };
          };
          const small = await cost(300);
          const big = await cost(3_000);
          // One read of a page-sized window (+1 for the token key) either way.
          for (const c of [small, big]) {
            assert.ok(c.keys <= 101, JSON.stringify(c));
            assert.ok(c.requests <= 30, JSON.stringify(c));
          }
        },
      );

      await step(
        "bad limit and continue are 400 naming the field",
        async () => {
          for (const path of ["/v1/vms", "/v1/tasks"]) {
            for (const limit of ["0", "1001", "abc", "2.5", "-1"]) {
              const r = await call(app, "GET", `${path}?limit=${limit}`, {
                headers: ADMIN,
              });
              assertError(r, 400, "limit");
            }
          }
          const vmToken = (await call(app, "GET", "/v1/vms?limit=1", {
            headers: ADMIN,
          })).body.continue as string;
          const taskToken = (await call(app, "GET", "/v1/tasks?limit=1", {
            headers: ADMIN,
          })).body.continue as string;
          const flip = (s: string) =>
            s.slice(0, 20) + (s[20] === "A" ? "B" : "A") + s.slice(21);
          const bad: [string, string][] = [
            ["/v1/vms", taskToken],
            ["/v1/tasks", vmToken],
            ["/v1/vms", flip(vmToken)],
            ["/v1/vms", "garbage"],
            ["/v1/vms", "not*base64"],
            ["/v1/tasks", Buffer.from("task/t-0").toString("base64url")],
            ["/v1/tasks", "x".repeat(3000)],
          ];
          for (const [path, token] of bad) {
            const r = await call(
              app,
              "GET",
              `${path}?continue=${encodeURIComponent(token)}`,
              { headers: ADMIN },
            );
            assertError(r, 400, "continue");
          }
          // Before any token was sealed, a refused one writes nothing.
          const { store: empty, app: emptyApp } = fresh({ auth: headerAuth });
          const before = await dump(empty);
          const forged = Buffer.from(crypto.getRandomValues(new Uint8Array(40)))
            .toString("base64url");
          assertError(
            await call(emptyApp, "GET", `/v1/tasks?continue=${forged}`, {
              headers: ADMIN,
            }),
            400,
            "continue",
          );
          assert.deepEqual(await dump(empty), before);
        },
      );

      await step(
        "a user sees no other user's VM or task through filters or tokens",
        async () => {
          const aliceVms = stable.filter(([, v]) => v.owner === "alice");
          // An owner filter of someone else: nothing, and nothing read.
          const r = await call(app, "GET", "/v1/vms?owner=alice", {
            headers: as("bob"),
          });
          assert.deepEqual(r.body, { items: [], continue: null });
          // Tasks of alice's VM, asked by bob: none.
          const t = await allPages<Task>(
            app,
            `/v1/tasks?vm=${vmId(3)}&limit=50`,
            as("bob"),
          );
          assert.ok(
            t.pages.flat().every((x) => x.owner === "bob"),
          );
          // The admin's tokens (positions among alice's VMs) give bob only his.
          const admin = await allPages<Vm>(app, "/v1/vms?limit=4", ADMIN);
          for (const token of admin.tokens.slice(0, 20)) {
            const p = await call(
              app,
              "GET",
              `/v1/vms?continue=${encodeURIComponent(token)}`,
              { headers: as("bob") },
            );
            assert.equal(p.status, 200);
            assert.ok(p.body.items.every((v: Vm) => v.owner === "bob"));
          }
          // A token names no key in clear.
          const bobs = await allPages<Vm>(app, "/v1/vms?limit=2", as("bob"));
          for (const token of [...bobs.tokens, ...admin.tokens]) {
            const clear = Buffer.from(token, "base64url").toString("latin1");
            assert.ok(!/vm-\d/.test(clear), clear);
          }
          assert.ok(aliceVms.length > 0);
        },
      );
    }),
});
