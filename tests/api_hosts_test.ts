/**
 * Host routes of the API against a real etcd: GET /v1/hosts (host, alive,
 * alloc, heartbeat), drain and enable with their task documents and bad
 * input, and POST /v1/maintenance/rebalance under its lock.
 */
import { SchedulerConfig } from "../core/config_scheduler.ts";
import assert from "node:assert/strict";
import { z } from "zod";
import {
  assertError,
  call,
  dump,
  headerAuth,
  noSanitize,
} from "./helpers/api.ts";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import { rebalanceOnce } from "../tasks/rebalance_round.ts";
import {
  aliveDoc,
  hostDoc,
  input,
  place,
  register,
} from "./helpers/api_fixtures.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import { reserveOn } from "./helpers/task_ctx.ts";

Deno.test({
  name: "api: /v1 against a real etcd: hosts and rebalance",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ fresh, step, create }) => {
      await step("GET /v1/hosts joins host, alive and alloc", async () => {
        const { store, app } = fresh();
        const host = (name: string, state: "active" | "draining") => ({
          name,
          capacity: { cpus: 8, memoryMiB: 16384 },
          addresses: ["2001:db8::1"],
          os: "linux",
          drivers: ["qemu"],
          state,
          registeredAt: "2025-01-01T00:00:00.000Z",
        });
        const r0 = await store.txn()
          .put(keys.host("h1"), host("h1", "active"))
          .put(keys.host("h2"), host("h2", "draining"))
          .put(keys.alive("h1"), {
            incarnation: "inc-1",
            started: "2025-01-02T00:00:00.000Z",
            pid: 42,
            lease: "7",
          })
          // vm-a in the sums and its own entry; vm-b as an older version
          // kept it, inside the document.
          .put(keys.alloc("h1"), {
            cpus: 2,
            memoryMiB: 512,
            diskMiB: 0,
            count: 1,
            vms: { "vm-b": { cpus: 1, memoryMiB: 128 } },
          })
          .put(keys.allocVm("h1", "vm-a"), { cpus: 2, memoryMiB: 512 })
          .commit();
        assert.ok(r0.ok);
        const r = await call(app, "GET", "/v1/hosts");
        assert.equal(r.status, 200);
        assert.deepEqual(
          r.body.items,
          [
            {
              ...host("h1", "active"),
              registeredAt: undefined,
              // Written by no worker of this version: offers what it has.
              allocation: { cpuRatio: 1, memoryRatio: 1, reservedMemoryMiB: 0 },
              effective: { cpus: 8, memoryMiB: 16384 },
              usage: { cpus: 3, memoryMiB: 640, vms: 2 },
              vms: ["vm-a", "vm-b"],
              alive: true,
              incarnation: "inc-1",
              started: "2025-01-02T00:00:00.000Z",
              // Lease "7" does not exist: no heartbeat to show.
            },
            {
              ...host("h2", "draining"),
              registeredAt: undefined,
              allocation: { cpuRatio: 1, memoryRatio: 1, reservedMemoryMiB: 0 },
              effective: { cpus: 8, memoryMiB: 16384 },
              usage: { cpus: 0, memoryMiB: 0, vms: 0 },
              vms: [],
              alive: false,
            },
          ].map((h) => JSON.parse(JSON.stringify(h))),
        );
      });

      await step(
        "GET /v1/hosts shows a host's allocation ratios, memory reserve and what it offers",
        async () => {
          const { store, app } = fresh();
          const allocation = {
            cpuRatio: 4,
            memoryRatio: 1.5,
            reservedMemoryMiB: 512,
          };
          const r0 = await store.txn()
            .put(keys.host("h1"), {
              ...hostDoc("h1"),
              capacity: { cpus: 2, memoryMiB: 2560, diskMiB: 10_240 },
              allocation,
            })
            .put(keys.alloc("h1"), {
              vms: { "vm-a": { cpus: 5, memoryMiB: 2048 } },
            })
            .commit();
          assert.ok(r0.ok);
          const r = await call(app, "GET", "/v1/hosts");
          assert.equal(r.status, 200);
          const [h] = r.body.items;
          assert.deepEqual(h.allocation, allocation);
          // 2 × 4 cores, (2560 − 512) × 1.5 MiB; disk is not overcommitted.
          assert.deepEqual(h.effective, {
            cpus: 8,
            memoryMiB: 3072,
            diskMiB: 10_240,
          });
          assert.deepEqual(h.usage, {
            cpus: 5,
            memoryMiB: 2048,
            diskMiB: 0,
            vms: 1,
          });
        },
      );

      await step(
        "GET /v1/hosts shows the last heartbeat of a live host's lease",
        async () => {
          const { store, app } = fresh();
          const lease = await store.grantLease(60);
          await register(store, lease, ["h1"]);
          const r = await call(app, "GET", "/v1/hosts");
          assert.equal(r.status, 200);
          const beat = Date.parse(r.body.items[0].lastHeartbeat);
          // Granted just now; etcd counts whole seconds.
          assert.ok(Math.abs(Date.now() - beat) < 3000, `${beat}`);
          await store.revokeLease(lease);
          const gone = await call(app, "GET", "/v1/hosts");
          assert.equal(gone.body.items[0].alive, false);
          assert.equal(gone.body.items[0].lastHeartbeat, undefined);
        },
      );

      await step(
        "POST /v1/hosts/{name}/drain and /enable change state with a task document",
        async () => {
          const { store, app } = fresh({ auth: headerAuth });
          const admin = { headers: { "X-User": "root/admin" } };
          const lease = await store.grantLease(60);
          await register(store, lease, ["h1", "h2"]);
          const r = await call(app, "POST", "/v1/hosts/h1/drain", admin);
          assert.equal(r.status, 202, JSON.stringify(r.body));
          assert.equal(r.body.host.name, "h1");
          assert.equal(r.body.host.state, "draining");
          const task = r.body.task as Task;
          assert.equal(task.kind, "host.drain");
          assert.equal(task.target, "any");
          assert.deepEqual(task.payload, {
            host: "h1",
            reason: "drained by root",
          });
          assert.equal(task.owner, "root");
          // Host state, task and queue entry in one transaction.
          const h = await store.get(keys.host("h1"), z.any());
          const tk = await store.get(keys.task(task.id), Task);
          const q = await store.get(keys.queue("any", task.id), z.unknown());
          assert.equal(h?.value.state, "draining");
          assert.deepEqual(tk?.value, task);
          assert.equal(h?.modRevision, tk?.modRevision);
          assert.equal(h?.modRevision, q?.modRevision);
          // The other host is untouched; draining twice changes nothing.
          assert.equal(
            (await store.get(keys.host("h2"), z.any()))?.value.state,
            "active",
          );
          let before = await dump(store);
          const again = await call(app, "POST", "/v1/hosts/h1/drain", admin);
          assert.equal(again.status, 200);
          assert.equal(again.body.task, null);
          assert.equal(again.body.host.state, "draining");
          assert.deepEqual(await dump(store), before);

          const en = await call(app, "POST", "/v1/hosts/h1/enable", admin);
          assert.equal(en.status, 200, JSON.stringify(en.body));
          assert.equal(en.body.host.state, "active");
          const rec = en.body.task as Task;
          assert.equal(rec.kind, "host.enable");
          assert.equal(rec.state, "succeeded");
          assert.deepEqual(rec.result, {
            host: "h1",
            state: "active",
            was: "draining",
          });
          assert.deepEqual(rec.history.map((e) => e.state), [
            "queued",
            "running",
            "succeeded",
          ]);
          const stored = await store.get(keys.task(rec.id), Task);
          assert.deepEqual(stored?.value, rec);
          // A record, not work: nothing queued for it.
          assert.equal(
            await store.get(keys.queue("any", rec.id), z.unknown()),
            null,
          );
          before = await dump(store);
          const twice = await call(app, "POST", "/v1/hosts/h1/enable", admin);
          assert.equal(twice.status, 200);
          assert.equal(twice.body.task, null);
          assert.deepEqual(await dump(store), before);
          await store.revokeLease(lease);
        },
      );

      await t.step({
        name: "drain and enable refuse bad input and leave etcd unchanged",
        ...noSanitize,
        async fn(t) {
          const { store, app } = fresh({ auth: headerAuth });
          const lease = await store.grantLease(60);
          await register(store, lease, ["h1"]);
          const admin = { "X-User": "root/admin" };
          const cases: {
            name: string;
            path: string;
            headers?: Record<string, string>;
            status: number;
            field?: string;
            message: RegExp;
          }[] = [];
          for (const action of ["drain", "enable"]) {
            cases.push(
              {
                name: `${action} an unknown host`,
                path: `/v1/hosts/nope/${action}`,
                headers: admin,
                status: 404,
                message: /^Cannot find host nope$/,
              },
              {
                name: `${action} a bad host name`,
                path: `/v1/hosts/H_1/${action}`,
                headers: admin,
                status: 400,
                field: "name",
                message: /^name must be a host name/,
              },
              {
                name: `${action} a too long host name`,
                path: `/v1/hosts/${"a".repeat(64)}/${action}`,
                headers: admin,
                status: 400,
                field: "name",
                message: /^name must be a host name/,
              },
              {
                name: `${action} as a non-admin`,
                path: `/v1/hosts/h1/${action}`,
                headers: { "X-User": "alice" },
                status: 403,
                message: new RegExp(
                  `^Cannot ${action} host h1: alice is not an admin$`,
                ),
              },
              {
                name: `${action} an unknown host as a non-admin`,
                path: `/v1/hosts/nope/${action}`,
                headers: { "X-User": "alice" },
                status: 403,
                message: /alice is not an admin/,
              },
              {
                name: `${action} without a principal`,
                path: `/v1/hosts/h1/${action}`,
                status: 401,
                message: /No X-User header/,
              },
            );
          }
          cases.push({
            name: "rebalance as a non-admin",
            path: "/v1/maintenance/rebalance",
            headers: { "X-User": "alice" },
            status: 403,
            message: /^Cannot run a rebalance round: alice is not an admin$/,
          });
          // Draining host h1 first makes "enable" a real change to refuse.
          for (const state of ["active", "draining"]) {
            if (state === "draining") {
              const r = await call(app, "POST", "/v1/hosts/h1/drain", {
                headers: admin,
              });
              assert.equal(r.status, 202);
            }
            for (const k of cases) {
              await t.step({
                name: `${k.name} (h1 ${state}) -> ${k.status}`,
                ...noSanitize,
                async fn() {
                  const before = await dump(store);
                  const r = await call(app, "POST", k.path, {
                    headers: k.headers,
                  });
                  assertError(r, k.status, k.field, k.message);
                  assert.deepEqual(await dump(store), before);
                },
              });
            }
          }
          await store.revokeLease(lease);
        },
      });

      await step(
        "POST /v1/maintenance/rebalance moves VMs once, under a lock",
        async () => {
          const scheduler = SchedulerConfig.parse({
            rebalanceMaxMoves: 1,
            rebalanceRunning: true,
          });
          const tasksCfg = {
            maxAttempts: 3,
            backoffBaseMs: 1,
            backoffMaxMs: 1,
            taskTimeoutMs: 1000,
          };
          const { store, app } = fresh({
            config: { tasks: tasksCfg, scheduler },
          });
          const lease = await store.grantLease(60);
          await register(store, lease, ["h1", "h2"]);
          const ids: string[] = [];
          for (let i = 0; i < 4; i++) {
            const { vm } = await create(app, { ...input, name: `w${i}` });
            await place(store, vm.id, "h1", "running");
            await reserveOn(store, "h1", vm.id);
            ids.push(vm.id);
          }

          // Two rounds at once: one holds the lock, the other moves nothing.
          const rs = await Promise.all([
            call(app, "POST", "/v1/maintenance/rebalance"),
            call(app, "POST", "/v1/maintenance/rebalance"),
          ]);
          for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r));
          const moves = rs.flatMap((r) => r.body.moves);
          assert.equal(moves.length, 1, JSON.stringify(rs.map((r) => r.body)));
          const quiet = rs.find((r) => r.body.moves.length === 0)!.body;
          assert.match(
            quiet.reason,
            /^(another rebalance round is running|1 move\(s\) or drain\(s\) still in flight)/,
          );
          const [m] = moves;
          assert.equal(m.from, "h1");
          assert.equal(m.to, "h2");
          assert.ok(ids.includes(m.vm));
          const moveTasks = (await store.list(keys.tasks, Task)).items
            .map((x) => x.value).filter((x) => x.kind === "vm.move");
          assert.equal(moveTasks.length, 1);
          assert.equal(moveTasks[0].id, m.task);
          assert.equal(moveTasks[0].target, "h1");
          assert.equal(moveTasks[0].owner, "local");
          assert.deepEqual(moveTasks[0].payload, {
            vm: m.vm,
            from: "h1",
            reason: "rebalancing: h1 63%, h2 0% loaded, gap above 25%",
          });
          assert.ok(await store.get(keys.queue("h1", m.task), z.unknown()));
          // The lock is released after the round.
          assert.equal(await store.get("cron/rebalance", z.unknown()), null);
          const later = await call(app, "POST", "/v1/maintenance/rebalance");
          assert.equal(later.body.ran, true);
          assert.deepEqual(later.body.moves, []);
          assert.equal(
            later.body.reason,
            "1 move(s) or drain(s) still in flight",
          );

          // A draining host with VMs and no drain running gets host.drain.
          await store.txn().put(keys.host("h3"), {
            ...hostDoc("h3"),
            state: "draining",
          }).put(keys.alive("h3"), aliveDoc(lease), { lease }).commit();
          await place(store, ids[3], "h3", "running");
          // Rebalance rounds read a host's VMs through its reservations.
          await reserveOn(store, "h3", ids[3]);
          const d = await call(app, "POST", "/v1/maintenance/rebalance");
          assert.deepEqual(d.body.drains.map((x: { host: string }) => x.host), [
            "h3",
          ]);
          const drainTask = await store.get(
            keys.task(d.body.drains[0].task),
            Task,
          );
          assert.equal(drainTask?.value.kind, "host.drain");
          assert.deepEqual(drainTask?.value.payload, {
            host: "h3",
            reason: "host h3 is draining",
          });
          const d2 = await call(app, "POST", "/v1/maintenance/rebalance");
          assert.deepEqual(d2.body.drains, []);

          // Scheduled rounds: of all workers whose cron fires for the same
          // minute, only the first runs it.
          const settings = { tasks: tasksCfg, scheduler };
          const round = "2026-01-01T12:00";
          const w1 = await rebalanceOnce(store, settings, { by: "h1", round });
          const w2 = await rebalanceOnce(store, settings, { by: "h2", round });
          assert.equal(w1.ran, true);
          assert.equal(w2.ran, false);
          assert.equal(w2.reason, `round ${round} already ran on h1`);
          const next = await rebalanceOnce(store, settings, {
            by: "h2",
            round: "2026-01-01T12:01",
          });
          assert.equal(next.ran, true);
          await store.revokeLease(lease);
        },
      );
    }),
});
