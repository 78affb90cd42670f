/**
 * POST /v1/vms against a real etcd: the VM, task and queue entry written in
 * one transaction, disk size and maxAttempts taken over, and Idempotency-Key
 * handling (repeated, per owner, concurrent).
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
  name: "api: /v1 against a real etcd: creating VMs",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ fresh, step, create }) => {
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
          // Waiting for capacity: the entry names the VM, owner and need.
          assert.deepEqual(q?.value, {
            notBefore: 0,
            wait: {
              vm: vm.id,
              owner: "local",
              need: { cpus: input.cpus, memoryMiB: input.memory },
            },
          });
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
    }),
});
