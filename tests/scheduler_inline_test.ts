/**
 * The scheduler against a real etcd, inline placement at create: POST
 * /v1/vms places the VM, reserves and queues vm.start in one txn; disk
 * decides where a VM fits; without any host the VM is created pending.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { createApp } from "../api/app.ts";
import { parseConfig } from "../core/config.ts";
import { keys } from "../core/keys.ts";
import { Alloc, AllocEntry, Vm } from "../core/schemas.ts";
import { claim, complete } from "../tasks/queue.ts";
import { vmCreate } from "../tasks/vm_create.ts";
import { waitFor } from "./helpers/cluster.ts";
import {
  checkInvariants,
  ctxFor,
  grant,
  placementTest,
  post,
  register,
  revoke,
} from "./helpers/placement.ts";

placementTest(
  "scheduler: placement against a real etcd",
  async ({ step, connect, cacheFor, config }) => {
    await step(
      "POST /v1/vms places inline: VM scheduled, reservation and vm.start in one txn",
      async () => {
        const store = connect();
        const lease = await grant(store);
        await register(store, lease, [{
          name: "h1",
          cpus: 2,
          memoryMiB: 1024,
        }]);
        const cache = await cacheFor(store);
        const app = createApp({ store });
        const r = await post(app, { name: "a", cpus: 1, memory: 512 });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        const { vm, task } = r.body;
        assert.equal(vm.status.phase, "scheduled");
        assert.equal(vm.status.host, "h1");
        assert.equal(vm.status.reason, undefined);
        assert.equal(task.kind, "vm.start");
        assert.equal(task.target, "h1");
        const v = await store.get(keys.vm(vm.id), Vm);
        const a = await store.get(keys.alloc("h1"), Alloc);
        const e = await store.get(keys.allocVm("h1", vm.id), AllocEntry);
        const q = await store.get(keys.queue("h1", task.id), z.unknown());
        assert.deepEqual(v?.value, vm);
        assert.deepEqual(a?.value, {
          cpus: 1,
          memoryMiB: 512,
          diskMiB: 0,
          count: 1,
          // The sums again, for an older version (scheduler/resources.ts).
          vms: { "~sums:1": { cpus: 1, memoryMiB: 512 } },
        });
        assert.deepEqual(e?.value, { cpus: 1, memoryMiB: 512 });
        assert.equal(v?.modRevision, a?.modRevision);
        assert.equal(v?.modRevision, e?.modRevision);
        assert.equal(v?.modRevision, q?.modRevision);
        assert.equal(await store.count(keys.queueOf("any")), 0);
        // The cache has this process's own write at once.
        assert.equal(cache.alloc("h1").modRevision, a?.modRevision);

        // Idempotency-Key: a replay returns the placed VM and its task.
        const headers = { "Idempotency-Key": "k1" };
        const first = await post(
          app,
          { name: "b", cpus: 1, memory: 128 },
          headers,
        );
        assert.equal(first.status, 201);
        assert.equal(first.body.vm.status.phase, "scheduled");
        const again = await post(
          app,
          { name: "b", cpus: 1, memory: 128 },
          headers,
        );
        assert.equal(again.status, 200);
        assert.equal(again.body.vm.id, first.body.vm.id);
        assert.equal(again.body.task.id, first.body.task.id);
        const other = await post(
          app,
          { name: "b", cpus: 2, memory: 128 },
          headers,
        );
        assert.equal(other.status, 409);

        // Full: pending with the reason, vm.create queued for a worker.
        const full = await post(app, { name: "c", cpus: 1, memory: 128 });
        assert.equal(full.status, 201);
        assert.equal(full.body.vm.status.phase, "pending");
        assert.equal(
          full.body.vm.status.reason,
          "no live host has 1 free CPU(s) and 128 MiB free memory " +
            "(1 host(s) checked; largest free: 0 CPU(s), 384 MiB on h1)",
        );
        assert.equal(full.body.task.kind, "vm.create");
        assert.equal(full.body.task.target, "any");

        // The host dies (its lease goes): the cache sees alive/ deleted.
        await revoke(store, lease);
        await waitFor(
          "cache to see h1 dead",
          () => cache.candidate("h1")?.alive === false,
          5000,
          10,
        );
        const dead = await post(app, { name: "d", cpus: 1, memory: 128 });
        assert.equal(dead.body.vm.status.phase, "pending");
        assert.equal(
          dead.body.vm.status.reason,
          "no live host is registered (1 registered: 1 not alive, 0 draining)",
        );
        const inv = await checkInvariants(store);
        assert.deepEqual(inv, { placed: 2, pending: 2, cpus: 2, vms: 4 });
      },
    );

    await step(
      "disk: a VM lands only where its disk fits; none fits: pending, disk named",
      async () => {
        const store = connect();
        const lease = await grant(store);
        await register(store, lease, [
          { name: "h1", cpus: 4, memoryMiB: 4096, diskMiB: 10 * 1024 },
          { name: "h2", cpus: 4, memoryMiB: 4096, diskMiB: 50 * 1024 },
        ]);
        await cacheFor(store);
        // pack would pick the smaller host h1 if disk did not count.
        const pack = parseConfig(
          { scheduler: { policy: "pack" } },
          () => undefined,
        );
        const app = createApp({ store, config: pack });
        const a = await post(app, {
          name: "a",
          cpus: 1,
          memory: 128,
          disk: 20,
        });
        assert.equal(a.status, 201, JSON.stringify(a.body));
        assert.equal(a.body.vm.status.phase, "scheduled");
        assert.equal(a.body.vm.status.host, "h2");
        assert.deepEqual((await store.get(keys.alloc("h2"), Alloc))?.value, {
          cpus: 1,
          memoryMiB: 128,
          diskMiB: 20 * 1024,
          count: 1,
          vms: { "~sums:1": { cpus: 1, memoryMiB: 128, diskMiB: 20 * 1024 } },
        });
        assert.deepEqual(
          (await store.get(keys.allocVm("h2", a.body.vm.id), AllocEntry))
            ?.value,
          { cpus: 1, memoryMiB: 128, diskMiB: 20 * 1024 },
        );
        // 40 GiB: h1 has 10, h2 30 left. Pending at create, and the
        // worker's vm.create finds no room either.
        const c = await post(app, {
          name: "c",
          cpus: 1,
          memory: 128,
          disk: 40,
        });
        assert.equal(c.status, 201);
        assert.equal(c.body.vm.status.phase, "pending");
        assert.equal(
          c.body.vm.status.reason,
          "no live host has 1 free CPU(s) and 128 MiB free memory and " +
            "40960 MiB free disk (2 host(s) checked; largest free: " +
            "3 CPU(s), 3968 MiB, 30720 MiB disk on h2; " +
            "short of disk on 2 host(s))",
        );
        const w = { name: "w1", lease: await grant(store) };
        const claimed = await claim(store, c.body.task.id, w);
        assert.ok(claimed);
        const o = await vmCreate(ctxFor(store, config, claimed.value, w));
        assert.match(
          (o.result as { pending: string }).pending,
          /40960 MiB free disk .*short of disk on 2 host\(s\)/,
        );
        assert.ok(await complete(store, claimed.value, w, o.result, o.txn));
        const vm = (await store.get(keys.vm(c.body.vm.id), Vm))!.value;
        assert.equal(vm.status.phase, "pending");
        assert.match(vm.status.reason ?? "", /short of disk/);
        assert.deepEqual(await checkInvariants(store), {
          placed: 1,
          pending: 1,
          cpus: 1,
          vms: 2,
        });
        await revoke(store, w.lease);
        await revoke(store, lease);
      },
    );

    await step(
      "without any host the API still creates pending VMs",
      async () => {
        const store = connect();
        await cacheFor(store);
        const app = createApp({ store });
        const r = await post(app, { name: "a", cpus: 1, memory: 128 });
        assert.equal(r.status, 201);
        assert.equal(r.body.vm.status.phase, "pending");
        assert.equal(r.body.vm.status.reason, "no live host is registered");
        assert.equal(r.body.task.kind, "vm.create");
      },
    );
  },
);
