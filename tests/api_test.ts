/**
 * The HTTP API against a real etcd: every step gets its own key prefix and
 * calls `app.request()` without a port. Rejected requests must leave etcd
 * exactly as it was (same keys, values, mod revisions and store revision).
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { Registry } from "prom-client";
import { createApp } from "../api/app.ts";
import {
  type App,
  assertError,
  call,
  type CallInit,
  dump,
  headerAuth,
  noSanitize,
} from "./helpers/api.ts";
import { freePort, startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { Task, Vm } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { rebalanceOnce } from "../tasks/rebalance_round.ts";

const input = { name: "web1", cpus: 1, memory: 128 };

/** Plays the worker: puts the VM on `host` in `phase`. */
async function place(
  store: Store,
  id: string,
  host: string | undefined,
  phase: Vm["status"]["phase"],
) {
  const cur = await store.get(keys.vm(id), Vm);
  assert.ok(cur);
  const status = { ...cur.value.status, phase, host };
  if (!host) delete status.host;
  const r = await store.txn().ifModRevision(cur.key, cur.modRevision)
    .put(cur.key, { ...cur.value, status }).commit();
  assert.ok(r.ok);
}

const hostDoc = (name: string) => ({
  name,
  capacity: { cpus: 4, memoryMiB: 2048 },
  addresses: [],
  os: "linux",
  drivers: ["qemu"],
  state: "active",
  registeredAt: "2025-01-01T00:00:00.000Z",
});

const aliveDoc = (lease: string) => ({
  incarnation: lease,
  started: "2025-01-02T00:00:00.000Z",
  pid: 42,
  lease,
});

/** Registers live hosts as a worker would: host doc, alive bound to `lease`. */
async function register(store: Store, lease: string, names: string[]) {
  for (const name of names) {
    const r = await store.txn().put(keys.host(name), hostDoc(name))
      .put(keys.alive(name), aliveDoc(lease), { lease }).commit();
    assert.ok(r.ok);
  }
}

Deno.test({
  name: "api: /v1 against a real etcd",
  ...noSanitize,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "ucloud-api-test-" });
    const etcd = await startEtcd({ dataDir: dir });
    const stores: Store[] = [];
    let n = 0;
    const connect = () => {
      const store = Store.connect({
        endpoints: [etcd.endpoint],
        prefix: `/t/${++n}`,
      });
      stores.push(store);
      return store;
    };
    const fresh = (opts: Partial<Parameters<typeof createApp>[0]> = {}) => {
      const store = connect();
      return { store, app: createApp({ store, ...opts }) };
    };
    const step = (name: string, fn: (t: Deno.TestContext) => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    const create = async (app: App, body: unknown = input, init = {}) => {
      const r = await call(app, "POST", "/v1/vms", { json: body, ...init });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body as { vm: Vm; task: Task };
    };

    try {
      await step(
        "POST /v1/vms writes VM, task and queue entry in one txn",
        async () => {
          const { store, app } = fresh();
          const r = await call(app, "POST", "/v1/vms", { json: input });
          assert.equal(r.status, 201);
          const { vm, task } = r.body;
          assert.match(vm.id, /^vm-/);
          assert.equal(vm.owner, "local");
          assert.deepEqual(vm.spec, { ...input, image: "tiny" });
          assert.equal(vm.desired, "running");
          assert.equal(vm.status.phase, "pending");
          assert.equal(task.kind, "vm.create");
          assert.equal(task.target, "any");
          assert.deepEqual(task.payload, { vm: vm.id });
          assert.equal(task.owner, "local");
          assert.equal(task.state, "queued");
          assert.equal(task.maxAttempts, 5);

          const v = await store.get(keys.vm(vm.id), Vm);
          const tk = await store.get(keys.task(task.id), Task);
          const q = await store.get(keys.queue("any", task.id), z.unknown());
          assert.deepEqual(v?.value, vm);
          assert.deepEqual(tk?.value, task);
          assert.deepEqual(q?.value, { notBefore: 0 });
          assert.equal(v?.modRevision, tk?.modRevision);
          assert.equal(v?.modRevision, q?.modRevision);

          const got = await call(app, "GET", `/v1/vms/${vm.id}`);
          assert.equal(got.status, 200);
          assert.deepEqual(got.body, vm);
          const list = await call(app, "GET", "/v1/vms");
          assert.equal(list.status, 200);
          assert.deepEqual(list.body.items, [vm]);
          const shown = await call(app, "GET", `/v1/tasks/${task.id}`);
          assert.deepEqual(shown.body, task);
        },
      );

      await step("POST /v1/vms keeps an asked-for disk size", async () => {
        const { store, app } = fresh();
        const { vm } = await create(app, { ...input, disk: 20 });
        assert.deepEqual(vm.spec, { ...input, image: "tiny", disk: 20 });
        assert.equal(
          (await store.get(keys.vm(vm.id), Vm))?.value.spec.disk,
          20,
        );
      });

      await step("config.tasks.maxAttempts is used for new tasks", async () => {
        const { app } = fresh({
          config: {
            tasks: {
              maxAttempts: 2,
              backoffBaseMs: 1,
              backoffMaxMs: 1,
              taskTimeoutMs: 1000,
            },
          },
        });
        const { task } = await create(app);
        assert.equal(task.maxAttempts, 2);
      });

      await step(
        "Idempotency-Key makes a repeated create return the first VM",
        async () => {
          const { store, app } = fresh();
          const headers = { "Idempotency-Key": "req-1:a.b_c" };
          const first = await create(app, input, { headers });
          const again = await call(app, "POST", "/v1/vms", {
            // Same request, other key order and the default spelled out.
            json: { memory: 128, image: "tiny", cpus: 1, name: "web1" },
            headers,
          });
          assert.equal(again.status, 200);
          assert.equal(again.body.vm.id, first.vm.id);
          assert.equal(again.body.task.id, first.task.id);
          assert.equal(again.body.task.idempotencyKey, "req-1:a.b_c");
          assert.equal(await store.count(keys.vms), 1);
          assert.equal(await store.count(keys.tasks), 1);
          assert.equal(await store.count(keys.queues), 1);
          const idem = await store.get(
            keys.idempotency("local", "req-1:a.b_c"),
            z.object({ vm: z.string(), task: z.string(), request: z.string() }),
          );
          assert.equal(idem?.value.vm, first.vm.id);
          assert.match(idem?.value.request ?? "", /^[0-9a-f]{64}$/);

          const before = await dump(store);
          const other = await call(app, "POST", "/v1/vms", {
            json: { ...input, cpus: 2 },
            headers,
          });
          assertError(
            other,
            409,
            undefined,
            /Idempotency-Key req-1:a\.b_c was used with a different request/,
          );
          assert.deepEqual(await dump(store), before);

          // A replay reads the current documents.
          await place(store, first.vm.id, "h1", "running");
          const later = await call(app, "POST", "/v1/vms", {
            json: input,
            headers,
          });
          assert.equal(later.status, 200);
          assert.equal(later.body.vm.status.host, "h1");
        },
      );

      await step("Idempotency-Keys are per owner", async () => {
        const { store, app } = fresh({ auth: headerAuth });
        const key = { "Idempotency-Key": "k1" };
        const a = await create(app, input, {
          headers: { ...key, "X-User": "alice" },
        });
        const b = await create(app, input, {
          headers: { ...key, "X-User": "bob" },
        });
        assert.notEqual(a.vm.id, b.vm.id);
        assert.equal(a.vm.owner, "alice");
        assert.equal(b.vm.owner, "bob");
        assert.equal(await store.count(keys.vms), 2);
      });

      await step(
        "concurrent creates with one Idempotency-Key make one VM",
        async () => {
          const { store, app } = fresh();
          const headers = { "Idempotency-Key": "race" };
          const rs = await Promise.all(
            Array.from(
              { length: 8 },
              () => call(app, "POST", "/v1/vms", { json: input, headers }),
            ),
          );
          assert.deepEqual(
            rs.map((r) => r.status).sort(),
            [200, 200, 200, 200, 200, 200, 200, 201],
          );
          assert.equal(
            new Set(rs.map((r) => r.body.vm.id)).size,
            1,
          );
          assert.equal(await store.count(keys.vms), 1);
          assert.equal(await store.count(keys.tasks), 1);
        },
      );

      await t.step({
        name: "rejected requests leave etcd unchanged",
        ...noSanitize,
        async fn(t) {
          const { store, app } = fresh({ auth: headerAuth });
          const seed = await create(app, input, {
            headers: { "X-User": "alice", "Idempotency-Key": "seed" },
          });
          await create(app, { ...input, name: "other" }, {
            headers: { "X-User": "bob" },
          });
          const unknownId = "vm-0000000000-00000000";
          const alice = { "X-User": "alice" };
          const json = { ...alice, "content-type": "application/json" };
          type Case = {
            name: string;
            method: string;
            path: string;
            init?: CallInit;
            status: number;
            field?: string;
            message: RegExp;
          };
          const cases: Case[] = [
            {
              name: "malformed JSON",
              method: "POST",
              path: "/v1/vms",
              init: { body: '{"name": "web1", ', headers: json },
              status: 400,
              field: "body",
              message: /JSON/,
            },
            {
              name: "a JSON array body",
              method: "POST",
              path: "/v1/vms",
              init: { json: [input], headers: alice },
              status: 400,
              field: "body",
              message: /expected object/,
            },
            {
              name: "unknown field",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, color: "red" }, headers: alice },
              status: 400,
              field: "color",
              message: /Unknown field "color"/,
            },
            {
              name: 'wrong type (cpus "two")',
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, cpus: "two" }, headers: alice },
              status: 400,
              field: "cpus",
              message: /^cpus: .*expected number/,
            },
            {
              name: "cpus 0",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, cpus: 0 }, headers: alice },
              status: 400,
              field: "cpus",
              message: /^cpus: .*>=1/,
            },
            {
              name: "cpus 65",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, cpus: 65 }, headers: alice },
              status: 400,
              field: "cpus",
              message: /^cpus: .*<=64/,
            },
            {
              name: "cpus 1.5",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, cpus: 1.5 }, headers: alice },
              status: 400,
              field: "cpus",
              message: /^cpus: .*int/,
            },
            {
              name: "memory 10",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, memory: 10 }, headers: alice },
              status: 400,
              field: "memory",
              message: /^memory: .*>=96/,
            },
            {
              name: "memory too big",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, memory: 2_000_000 }, headers: alice },
              status: 400,
              field: "memory",
              message: /^memory: .*<=1048576/,
            },
            {
              name: "disk 0",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, disk: 0 }, headers: alice },
              status: 400,
              field: "disk",
              message: /^disk: .*>=1/,
            },
            {
              name: "disk too big",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, disk: 65_537 }, headers: alice },
              status: 400,
              field: "disk",
              message: /^disk: .*<=65536/,
            },
            {
              name: "disk not whole GiB",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, disk: 1.5 }, headers: alice },
              status: 400,
              field: "disk",
              message: /^disk: /,
            },
            {
              name: "disk as text",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, disk: "20" }, headers: alice },
              status: 400,
              field: "disk",
              message: /^disk: .*expected number/,
            },
            {
              name: "bad name",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, name: "Web_1" }, headers: alice },
              status: 400,
              field: "name",
              message: /^name must be 1-63 lowercase letters/,
            },
            {
              name: "bad image",
              method: "POST",
              path: "/v1/vms",
              init: { json: { ...input, image: "../x" }, headers: alice },
              status: 400,
              field: "image",
              message: /^image: /,
            },
            {
              name: "missing field",
              method: "POST",
              path: "/v1/vms",
              init: { json: { name: "web1", cpus: 1 }, headers: alice },
              status: 400,
              field: "memory",
              message: /^memory: .*expected number, received undefined/,
            },
            {
              name: "empty body",
              method: "POST",
              path: "/v1/vms",
              init: { body: "", headers: json },
              status: 400,
              field: "body",
              message: /JSON/,
            },
            {
              name: "text/plain body",
              method: "POST",
              path: "/v1/vms",
              init: {
                body: JSON.stringify(input),
                headers: { ...alice, "content-type": "text/plain" },
              },
              status: 415,
              message: /Unsupported Media Type/,
            },
            {
              name: "body without content type",
              method: "POST",
              path: "/v1/vms",
              init: { body: JSON.stringify(input), headers: alice },
              status: 415,
              message: /Unsupported Media Type/,
            },
            {
              name: "Idempotency-Key with a space",
              method: "POST",
              path: "/v1/vms",
              init: {
                json: input,
                headers: { ...alice, "Idempotency-Key": "a b" },
              },
              status: 400,
              field: "Idempotency-Key",
              message: /Idempotency-Key must be 1-200 characters/,
            },
            {
              name: "Idempotency-Key of 201 characters",
              method: "POST",
              path: "/v1/vms",
              init: {
                json: input,
                headers: { ...alice, "Idempotency-Key": "k".repeat(201) },
              },
              status: 400,
              field: "Idempotency-Key",
              message: /Idempotency-Key must be/,
            },
            {
              name: "Idempotency-Key reused with another body",
              method: "POST",
              path: "/v1/vms",
              init: {
                json: { ...input, memory: 256 },
                headers: { ...alice, "Idempotency-Key": "seed" },
              },
              status: 409,
              message: /Idempotency-Key seed was used with a different request/,
            },
            ...["GET", "DELETE"].flatMap((method) => [
              {
                name: `${method} unknown VM`,
                method,
                path: `/v1/vms/${unknownId}`,
                init: { headers: alice },
                status: 404,
                message: new RegExp(`Cannot find vm ${unknownId}`),
              },
              {
                name: `${method} malformed VM id`,
                method,
                path: "/v1/vms/Bad_Id",
                init: { headers: alice },
                status: 400,
                field: "id",
                message: /^id must be 1-64 lowercase/,
              },
              {
                name: `${method} another user's VM`,
                method,
                path: `/v1/vms/${seed.vm.id}`,
                init: { headers: { "X-User": "bob" } },
                status: 404,
                message: /Cannot find vm/,
              },
            ]),
            ...["stop", "start"].flatMap((action) => [
              {
                name: `${action} unknown VM`,
                method: "POST",
                path: `/v1/vms/${unknownId}/${action}`,
                init: { headers: alice },
                status: 404,
                message: /Cannot find vm/,
              },
              {
                name: `${action} malformed VM id`,
                method: "POST",
                path: `/v1/vms/-x/${action}`,
                init: { headers: alice },
                status: 400,
                field: "id",
                message: /id must be/,
              },
              {
                name: `${action} another user's VM`,
                method: "POST",
                path: `/v1/vms/${seed.vm.id}/${action}`,
                init: { headers: { "X-User": "bob" } },
                status: 404,
                message: /Cannot find vm/,
              },
            ]),
            {
              name: "stop a VM without host",
              method: "POST",
              path: `/v1/vms/${seed.vm.id}/stop`,
              init: { headers: alice },
              status: 409,
              message: /has no host yet \(phase pending\)/,
            },
            ...["0", "1001", "ten", "-1", "2.5"].map((limit) => ({
              name: `tasks limit=${limit}`,
              method: "GET",
              path: `/v1/tasks?limit=${limit}`,
              init: { headers: alice },
              status: 400,
              field: "limit",
              message: /^limit: /,
            })),
            {
              name: "tasks state=bogus",
              method: "GET",
              path: "/v1/tasks?state=bogus",
              init: { headers: alice },
              status: 400,
              field: "state",
              message: /^state: /,
            },
            {
              name: "unknown task",
              method: "GET",
              path: "/v1/tasks/t-nope",
              init: { headers: alice },
              status: 404,
              message: /Cannot find task t-nope/,
            },
            {
              name: "drain report of a task that is no drain",
              method: "GET",
              path: `/v1/tasks/${seed.task.id}/drain`,
              init: { headers: alice },
              status: 409,
              message: /is a vm\.create, not a host\.drain/,
            },
            {
              name: "another user's task",
              method: "GET",
              path: `/v1/tasks/${seed.task.id}`,
              init: { headers: { "X-User": "bob" } },
              status: 404,
              message: /Cannot find task/,
            },
            {
              name: "unknown route",
              method: "GET",
              path: "/v1/nope",
              init: { headers: alice },
              status: 404,
              message: /No route GET \/v1\/nope/,
            },
            {
              name: "unsupported method",
              method: "PUT",
              path: "/v1/vms",
              init: { json: input, headers: alice },
              status: 404,
              message: /No route PUT/,
            },
            {
              name: "no principal (auth rejects)",
              method: "POST",
              path: "/v1/vms",
              init: { json: input },
              status: 401,
              message: /No X-User header/,
            },
            {
              name: "body over 64 KiB",
              method: "POST",
              path: "/v1/vms",
              init: {
                json: { ...input, name: "a".repeat(70_000) },
                headers: alice,
              },
              status: 413,
              message: /larger than 65536 bytes/,
            },
          ];
          for (const k of cases) {
            await t.step({
              name: `${k.name} -> ${k.status}`,
              ...noSanitize,
              async fn() {
                const before = await dump(store);
                const r = await call(app, k.method, k.path, k.init);
                assertError(r, k.status, k.field, k.message);
                assert.deepEqual(await dump(store), before);
              },
            });
          }
        },
      });

      await step("non-admins see only their own VMs and tasks", async () => {
        const { app } = fresh({ auth: headerAuth });
        const alice = { headers: { "X-User": "alice" } };
        const a = await create(app, input, alice);
        const b = await create(app, input, { headers: { "X-User": "bob" } });
        const mine = await call(app, "GET", "/v1/vms", alice);
        assert.deepEqual(mine.body.items.map((v: Vm) => v.id), [a.vm.id]);
        const all = await call(app, "GET", "/v1/vms", {
          headers: { "X-User": "root/admin" },
        });
        assert.deepEqual(
          all.body.items.map((v: Vm) => v.id).sort(),
          [a.vm.id, b.vm.id].sort(),
        );
        const tasks = await call(app, "GET", "/v1/tasks", alice);
        assert.deepEqual(tasks.body.items.map((t: Task) => t.id), [a.task.id]);
        const admin = await call(app, "GET", `/v1/vms/${a.vm.id}`, {
          headers: { "X-User": "root/admin" },
        });
        assert.equal(admin.status, 200);
      });

      await step(
        "stop, start and delete change state and enqueue tasks",
        async () => {
          const { store, app } = fresh();
          const { vm } = await create(app);
          await place(store, vm.id, "h1", "running");

          let r = await call(app, "POST", `/v1/vms/${vm.id}/start`);
          assert.equal(r.status, 200);
          assert.equal(r.body.task, null);

          r = await call(app, "POST", `/v1/vms/${vm.id}/stop`);
          assert.equal(r.status, 202);
          assert.equal(r.body.vm.desired, "stopped");
          assert.equal(r.body.vm.status.phase, "stopping");
          assert.equal(r.body.task.kind, "vm.stop");
          assert.equal(r.body.task.target, "h1");
          assert.deepEqual(r.body.task.payload, { vm: vm.id });
          assert.deepEqual(
            (await store.get(keys.vm(vm.id), Vm))?.value,
            r.body.vm,
          );
          assert.ok(
            await store.get(keys.queue("h1", r.body.task.id), z.unknown()),
          );

          await place(store, vm.id, "h1", "stopped");
          let before = await dump(store);
          r = await call(app, "POST", `/v1/vms/${vm.id}/stop`);
          assert.equal(r.status, 200);
          assert.equal(r.body.task, null);
          assert.equal(r.body.vm.status.phase, "stopped");
          assert.deepEqual(await dump(store), before);

          r = await call(app, "POST", `/v1/vms/${vm.id}/start`);
          assert.equal(r.status, 202);
          assert.equal(r.body.vm.desired, "running");
          assert.equal(r.body.vm.status.phase, "starting");
          assert.equal(r.body.task.kind, "vm.start");
          assert.equal(r.body.task.target, "h1");
          assert.ok(
            await store.get(keys.queue("h1", r.body.task.id), z.unknown()),
          );

          r = await call(app, "DELETE", `/v1/vms/${vm.id}`);
          assert.equal(r.status, 202);
          assert.equal(r.body.vm.desired, "deleted");
          assert.equal(r.body.vm.status.phase, "deleting");
          assert.equal(r.body.vm.status.host, "h1");
          assert.equal(r.body.task.kind, "vm.delete");
          assert.equal(r.body.task.target, "h1");
          assert.ok(
            await store.get(keys.queue("h1", r.body.task.id), z.unknown()),
          );

          before = await dump(store);
          r = await call(app, "DELETE", `/v1/vms/${vm.id}`);
          assert.equal(r.status, 202);
          assert.equal(r.body.task, null);
          assert.equal(r.body.vm.desired, "deleted");
          for (const action of ["stop", "start"]) {
            const x = await call(app, "POST", `/v1/vms/${vm.id}/${action}`);
            assertError(
              x,
              409,
              undefined,
              new RegExp(`Cannot ${action} VM ${vm.id}: it is being deleted`),
            );
          }
          assert.deepEqual(await dump(store), before);

          const kinds = (await call(app, "GET", `/v1/tasks?vm=${vm.id}`)).body
            .items
            .map((t: Task) => t.kind);
          assert.deepEqual(kinds, [
            "vm.delete",
            "vm.start",
            "vm.stop",
            "vm.create",
          ]);
        },
      );

      await step(
        "start without a host enqueues vm.create again; delete targets any",
        async () => {
          const { store, app } = fresh();
          const { vm } = await create(app);
          await place(store, vm.id, undefined, "failed");
          let r = await call(app, "POST", `/v1/vms/${vm.id}/start`);
          assert.equal(r.status, 202);
          assert.equal(r.body.vm.desired, "running");
          assert.equal(r.body.vm.status.phase, "pending");
          assert.equal(r.body.task.kind, "vm.create");
          assert.equal(r.body.task.target, "any");
          assert.equal(await store.count(keys.queueOf("any")), 2);

          r = await call(app, "DELETE", `/v1/vms/${vm.id}`);
          assert.equal(r.status, 202);
          assert.equal(r.body.task.target, "any");
        },
      );

      await step(
        "concurrent deletes make exactly one vm.delete task",
        async () => {
          const { store, app } = fresh();
          const { vm } = await create(app);
          await place(store, vm.id, "h2", "running");
          const rs = await Promise.all(
            Array.from(
              { length: 8 },
              () => call(app, "DELETE", `/v1/vms/${vm.id}`),
            ),
          );
          assert.deepEqual(
            rs.map((r) => r.status),
            Array(8).fill(202),
          );
          assert.equal(rs.filter((r) => r.body.task !== null).length, 1);
          assert.equal(await store.count(keys.queueOf("h2")), 1);
        },
      );

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
          .put(keys.alloc("h1"), {
            vms: {
              "vm-a": { cpus: 2, memoryMiB: 512 },
              "vm-b": { cpus: 1, memoryMiB: 128 },
            },
          })
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
              usage: { cpus: 0, memoryMiB: 0, vms: 0 },
              vms: [],
              alive: false,
            },
          ].map((h) => JSON.parse(JSON.stringify(h))),
        );
      });

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
          const scheduler = {
            policy: "spread" as const,
            rebalanceSchedule: "* * * * *",
            rebalanceMaxMoves: 1,
            rebalanceThreshold: 0.25,
            rebalanceRunning: true,
          };
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
            ids.push(vm.id);
          }
          await store.txn().put(keys.alloc("h1"), {
            vms: Object.fromEntries(
              ids.map((id) => [id, { cpus: 1, memoryMiB: 128 }]),
            ),
          }).commit();

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

      await step(
        "GET /v1/tasks filters, limits and sorts newest first",
        async () => {
          const { store, app } = fresh();
          const a = await create(app);
          const b = await create(app, { ...input, name: "web2" });
          await place(store, b.vm.id, "h1", "running");
          const stop =
            (await call(app, "POST", `/v1/vms/${b.vm.id}/stop`)).body.task;
          const ids = async (q: string) =>
            (await call(app, "GET", `/v1/tasks${q}`)).body.items.map((
              t: Task,
            ) => t.id);
          assert.deepEqual(await ids(""), [stop.id, b.task.id, a.task.id]);
          assert.deepEqual(await ids("?limit=2"), [stop.id, b.task.id]);
          assert.deepEqual(await ids("?kind=vm.create"), [
            b.task.id,
            a.task.id,
          ]);
          assert.deepEqual(await ids(`?vm=${a.vm.id}`), [a.task.id]);
          assert.deepEqual(await ids("?target=h1"), [stop.id]);
          assert.deepEqual(await ids("?state=queued&target=any&limit=1"), [
            b.task.id,
          ]);
          assert.deepEqual(await ids("?state=succeeded"), []);
        },
      );

      await step("GET /v1/openapi.json describes every route", async () => {
        const { app } = fresh();
        const r = await call(app, "GET", "/v1/openapi.json");
        assert.equal(r.status, 200);
        assert.match(r.body.openapi, /^3\./);
        assert.equal(r.body.info.title, "ucloud");
        const paths = r.body.paths;
        assert.deepEqual(Object.keys(paths).sort(), [
          "/v1/hosts",
          "/v1/hosts/{name}/drain",
          "/v1/hosts/{name}/enable",
          "/v1/hosts/{name}/shutdown",
          "/v1/maintenance/rebalance",
          "/v1/networks",
          "/v1/networks/{id}",
          "/v1/tasks",
          "/v1/tasks/{id}",
          "/v1/tasks/{id}/drain",
          "/v1/vms",
          "/v1/vms/{id}",
          "/v1/vms/{id}/nics",
          "/v1/vms/{id}/nics/{slot}",
          "/v1/vms/{id}/reboot",
          "/v1/vms/{id}/start",
          "/v1/vms/{id}/stop",
        ]);
        for (const action of ["stop", "reboot"]) {
          const power = paths[`/v1/vms/{id}/${action}`].post.requestBody;
          assert.equal(power.required, false);
          assert.ok(power.content["application/json"].schema);
        }
        assert.deepEqual(Object.keys(paths["/v1/vms"]).sort(), ["get", "post"]);
        assert.deepEqual(Object.keys(paths["/v1/vms/{id}"]).sort(), [
          "delete",
          "get",
        ]);
        const post = paths["/v1/vms"].post;
        assert.ok(post.requestBody.content["application/json"].schema);
        const body = post.requestBody.content["application/json"].schema;
        assert.deepEqual(body.properties.disk, {
          type: "integer",
          minimum: 1,
          maximum: 65536,
          description:
            "GiB of local disk; absent: the image's own size, no disk reserved",
        });
        assert.ok(!body.required.includes("disk"));
        assert.equal(body.additionalProperties, false);
        assert.ok(
          post.parameters.some((p: { name: string }) =>
            p.name === "Idempotency-Key"
          ),
        );
        assert.ok(r.body.components.schemas.Vm);
        assert.ok(r.body.components.schemas.Task);
        assert.ok(r.body.components.schemas.Error);
      });

      await step(
        "GET /metrics reports HTTP, queue and task metrics",
        async () => {
          const registry = new Registry();
          const { store, app } = fresh({ registry });
          const { vm } = await create(app);
          await create(app, { ...input, name: "web2" });
          await place(store, vm.id, "h1", "running");
          await call(app, "POST", `/v1/vms/${vm.id}/stop`);
          await call(app, "GET", `/v1/vms/${vm.id}`);
          await call(app, "GET", "/v1/vms/vm-nope-0");
          await call(app, "GET", "/no/such/path");
          const r = await call(app, "GET", "/metrics");
          assert.equal(r.status, 200);
          assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
          const text: string = r.body;
          const has = (s: string) =>
            assert.ok(text.includes(s), `missing ${s} in\n${text}`);
          has(
            'ucloud_http_requests_total{method="POST",route="/v1/vms",status="201"} 2',
          );
          has(
            'ucloud_http_requests_total{method="GET",route="/v1/vms/:id",status="200"} 1',
          );
          has(
            'ucloud_http_requests_total{method="GET",route="/v1/vms/:id",status="404"} 1',
          );
          has(
            'ucloud_http_requests_total{method="POST",route="/v1/vms/:id/stop",status="202"} 1',
          );
          has(
            'ucloud_http_requests_total{method="GET",route="unmatched",status="404"} 1',
          );
          has(
            'ucloud_http_request_duration_seconds_count{method="POST",route="/v1/vms"} 2',
          );
          has('ucloud_task_queue_depth{target="any"} 2');
          has('ucloud_task_queue_depth{target="h1"} 1');
          has('ucloud_tasks{kind="vm.create",state="queued"} 2');
          has('ucloud_tasks{kind="vm.stop",state="queued"} 1');
          assert.ok(!text.includes("vm-nope-0"));
          // The registry handed in is the one served.
          assert.match(await registry.metrics(), /ucloud_tasks/);
          // A second app has its own registry: no duplicate registration.
          fresh();
        },
      );

      await step("GET /healthz says ok while etcd answers", async () => {
        const { app } = fresh();
        const r = await call(app, "GET", "/healthz");
        assert.equal(r.status, 200);
        assert.deepEqual(r.body, { ok: true });
      });

      await step(
        "an unreachable etcd gives 503 on /healthz and the API",
        async () => {
          const store = Store.connect({
            endpoints: [`http://127.0.0.1:${freePort()}`],
            prefix: "/t/dead",
            timeoutMs: 300,
          });
          stores.push(store);
          const app = createApp({ store });
          const h = await call(app, "GET", "/healthz");
          assert.equal(h.status, 503);
          assert.equal(h.body.ok, false);
          const r = await call(app, "GET", "/v1/vms");
          assertError(r, 503, undefined, /etcd/);
          const c = await call(app, "POST", "/v1/vms", { json: input });
          assertError(c, 503, undefined, /etcd/);
        },
      );
    } finally {
      for (const s of stores) s.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
