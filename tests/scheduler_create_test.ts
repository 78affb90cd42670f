/**
 * The `vm.create` handler's placement against a real etcd: a placement
 * commits only while the chosen host's lease lives, `payload.avoid` leaves
 * a host out, and a pending VM is placed soon after capacity appears (with a
 * real worker process running the handler).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { PlacementCache } from "../scheduler/cache.ts";
import { Alive, Alloc, AllocEntry, Task, Vm } from "../core/schemas.ts";
import { claim, complete, enqueue, newTask } from "../tasks/queue.ts";
import { vmCreate } from "../tasks/vm_create.ts";
import { startCluster, waitFor } from "./helpers/cluster.ts";
import {
  checkInvariants,
  ctxFor,
  grant,
  hostDoc,
  noSanitize,
  placed,
  placementTest,
  post,
  register,
  revoke,
} from "./helpers/placement.ts";

placementTest(
  "scheduler: placement against a real etcd",
  async ({ step, connect, config }) => {
    await step(
      "a placement commits only while the chosen host's lease lives",
      async () => {
        const store = connect();
        const lease = await grant(store);
        await register(store, lease, [{
          name: "h1",
          cpus: 4,
          memoryMiB: 4096,
        }]);
        const app = createApp({ store });
        const a = await post(app, { name: "a", cpus: 1, memory: 128 });
        const w = { name: "w1", lease: await grant(store) };
        const c1 = await claim(store, a.body.task.id, w);
        assert.ok(c1);
        const o = await vmCreate(ctxFor(store, config, c1.value, w));
        assert.deepEqual(placed(o.result), { host: "h1" });
        // The host dies between the choice and the commit.
        await revoke(store, lease);
        assert.equal(
          await complete(store, c1.value, w, o.result, o.txn),
          false,
        );
        assert.equal(await store.get(keys.alloc("h1"), Alloc), null);
        const again = await vmCreate(ctxFor(store, config, c1.value, w));
        assert.match(
          (again.result as { pending: string }).pending,
          /^no live host is registered \(1 registered: 1 not alive/,
        );
        await revoke(store, w.lease);
      },
    );

    await step(
      "vm.create with payload.avoid leaves that host out, falling back to it only when nothing else fits",
      async () => {
        const store = connect();
        const lease = await grant(store);
        await register(store, lease, [
          { name: "h1", cpus: 4, memoryMiB: 4096 },
          { name: "h2", cpus: 1, memoryMiB: 1024 },
        ]);
        const app = createApp({ store });
        const w = { name: "w1", lease: await grant(store) };
        /** Runs one vm.create for a new pending VM moving off `avoid`. */
        const move = async (name: string, avoid: string) => {
          const r = await post(app, { name, cpus: 1, memory: 128 });
          const t = newTask({
            kind: "vm.create",
            target: "any",
            payload: { vm: r.body.vm.id, avoid, reason: "test" },
          });
          assert.ok((await enqueue(store.txn(), t).commit()).ok);
          const c = (await claim(store, t.id, w))!;
          const o = await vmCreate(ctxFor(store, config, c.value, w));
          assert.ok(await complete(store, c.value, w, o.result, o.txn));
          return {
            // deno-lint-ignore no-explicit-any
            result: o.result as any,
            vm: (await store.get(keys.vm(r.body.vm.id), Vm))!.value,
          };
        };
        // h1 has far more room, but the VM moves off it.
        const a = await move("a", "h1");
        assert.deepEqual(placed(a.result), { host: "h2" });
        assert.equal(a.vm.status.host, "h2");
        // h2 is full now: back to h1 rather than waiting.
        const b = await move("b", "h1");
        assert.deepEqual(placed(b.result), {
          host: "h1",
          note: "no host other than h1 fits; placed on h1",
        });
        // Nothing fits anywhere: pending, the reason names the move,
        // and the next try still avoids the host.
        await store.txn().put(keys.host("h1"), hostDoc("h1", 1, 4096))
          .commit();
        const c = await move("c", "h2");
        assert.match(
          c.result.pending,
          /^no live host has 1 free CPU\(s\).*; moving off h2$/,
        );
        assert.equal(c.vm.status.phase, "pending");
        assert.equal(c.vm.status.reason, c.result.pending);
        const next = (await store.get(keys.task(c.result.next), Task))!;
        assert.equal(next.value.payload.avoid, "h2");
        await checkInvariants(store);
        for (const l of [lease, w.lease]) await revoke(store, l);
      },
    );
  },
);

Deno.test({
  name:
    "scheduler: a pending VM is placed within seconds of capacity appearing",
  ...noSanitize,
  async fn() {
    const c = await startCluster({ guest: false });
    const cache = PlacementCache.start(c.store);
    let lease: string | undefined;
    try {
      c.env.UCLOUD_DRIVER = "sim";
      const w = await c.addWorker({ name: "h1", cpus: 1, memoryMiB: 1024 });
      await waitFor(
        "h1 registered",
        async () => await c.store.get(keys.alive("h1"), Alive),
        30_000,
      ).catch(
        async (err) => {
          throw new Error(`${err.message}\n${await w.log()}`);
        },
      );
      await cache.ready;
      await waitFor(
        "cache to see h1",
        () => cache.candidate("h1")?.alive === true,
        5000,
        10,
      );
      const app = createApp({ store: c.store });
      const r = await post(app, { name: "big", cpus: 2, memory: 256 });
      assert.equal(r.status, 201);
      const id = r.body.vm.id as string;
      assert.equal(r.body.vm.status.phase, "pending");
      assert.equal(
        r.body.vm.status.reason,
        "no live host has 2 free CPU(s) and 256 MiB free memory " +
          "(1 host(s) checked; largest free: 1 CPU(s), 1024 MiB, " +
          "102400 MiB disk on h1)",
      );
      // The worker's vm.create finds no room either and waits.
      await waitFor("the worker to try vm.create", async () => {
        const t = await c.store.get(keys.task(r.body.task.id), Task);
        return t?.value.state === "succeeded";
      }, 15_000).catch(async (err) => {
        throw new Error(`${err.message}\n${await w.log()}`);
      });
      const vm = (await c.store.get(keys.vm(id), Vm))!.value;
      assert.equal(vm.status.phase, "pending");
      assert.match(vm.status.reason ?? "", /^no live host has 2 free CPU/);

      // A bigger host appears (registered by hand, no worker needed).
      lease = await grant(c.store);
      await register(c.store, lease, [{
        name: "h2",
        cpus: 4,
        memoryMiB: 4096,
      }]);
      const t0 = Date.now();
      const placed = await waitFor(
        "the VM placed on h2",
        async () => {
          const v = (await c.store.get(keys.vm(id), Vm))?.value;
          return v?.status.host === "h2" ? v : null;
        },
        10_000,
        20,
      ).catch(async (err) => {
        throw new Error(`${err.message}\n${await w.log()}`);
      });
      const ms = Date.now() - t0;
      assert.equal(placed.status.phase, "scheduled");
      assert.equal(placed.status.reason, undefined);
      // Woken by the worker's cache seeing h2, not at the back-off's end.
      assert.ok(ms < 4000, `placed after ${ms} ms`);
      const entry = await c.store.get(keys.allocVm("h2", id), AllocEntry);
      assert.deepEqual(entry?.value, { cpus: 2, memoryMiB: 256 });
      // No attempt was spent waiting; at most the first and the last
      // vm.create documents remain.
      const tasks = (await c.store.list(keys.tasks, Task)).items
        .map((t) => t.value).filter((t) => t.payload.vm === id);
      const creates = tasks.filter((t) => t.kind === "vm.create");
      assert.ok(creates.length <= 2, JSON.stringify(creates));
      assert.ok(
        creates.every((t) => t.state === "succeeded" && t.attempts === 1),
      );
      assert.ok(tasks.some((t) => t.kind === "vm.start" && t.target === "h2"));
    } finally {
      await cache.close();
      if (lease) await revoke(c.store, lease);
      await c.stop();
    }
  },
});
