/**
 * VM ownership and actions through the API against a real etcd: non-admins
 * see only their own VMs and tasks; stop, start and delete change state and
 * enqueue the right tasks, once even when concurrent.
 */
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
import { Task, Vm } from "../core/schemas.ts";
import { input, place } from "./helpers/api_fixtures.ts";
import { withApiEnv } from "./helpers/api_env.ts";

Deno.test({
  name: "api: /v1 against a real etcd: VM ownership and actions",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ fresh, step, create }) => {
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
    }),
});
