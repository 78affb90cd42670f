/**
 * VMs waiting for capacity, against a real etcd: the tries back off up to
 * `scheduler.placementRetryMaxSeconds` (a worker process, sim driver); a
 * VM far into its back-off is placed soon after a host gains room (the
 * worker's placement cache wakes it); and a user's waiting VMs are bounded
 * by `scheduler.maxPendingVmsPerUser` (409), counted per owner, freed by a
 * delete.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { SchedulerConfig } from "../core/config_scheduler.ts";
import { ConflictError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import { Alive, Task, Vm } from "../core/schemas.ts";
import { QueueEntry } from "../core/task_doc.ts";
import { createVm, deleteVm } from "../resources/vms/mod.ts";
import { waitFor, withCluster } from "./helpers/cluster.ts";
import {
  grant,
  noSanitize,
  oneSmallHost,
  placementTest,
  post,
  register,
  revoke,
  WAITING_VM,
} from "./helpers/placement.ts";

Deno.test({
  name:
    "a VM that fits nowhere is tried again after a back-off doubling up to scheduler.placementRetryMaxSeconds",
  ...noSanitize,
  fn: () =>
    withCluster(async (c) => {
      await c.addWorker({
        name: "h1",
        cpus: 1,
        env: { UCLOUD_DRIVER: "sim", UCLOUD_PLACEMENT_RETRY_MAX_SECONDS: "4" },
      });
      await waitFor("h1 alive", () => c.store.get(keys.alive("h1"), Alive));
      const app = createApp({ store: c.store });
      const r = await post(app, { name: "big", cpus: 2, memory: 128 });
      assert.equal(r.status, 201);
      const id = r.body.vm.id as string;
      const seen = new Set<number>();
      await waitFor(
        "a try waiting longer than the old 2 s",
        async () => {
          for (
            const { value: t } of (await c.store.list(keys.tasks, Task)).items
          ) {
            const ms = (t.result as { retryInMs?: number } | undefined)
              ?.retryInMs;
            if (t.payload.vm === id && ms !== undefined) seen.add(ms);
          }
          return [...seen].some((ms) => ms > 2000);
        },
        60_000,
        50,
      );
      const waits = [...seen].sort((a, b) => a - b);
      assert.ok(waits[0] <= 250, `${waits}`);
      assert.ok(waits.every((ms) => ms <= 4000), `${waits}`);
      // The waiting try's queue entry names the VM, its owner and need.
      const queued = (await c.store.list(keys.queueOf("any"), QueueEntry))
        .items.map((q) => q.value).find((q) => q.wait?.vm === id);
      assert.deepEqual(queued?.wait, {
        vm: id,
        owner: "local",
        need: { cpus: 2, memoryMiB: 128 },
      });
      const vm = (await c.store.get(keys.vm(id), Vm))!.value;
      assert.equal(vm.status.phase, "pending");
      assert.match(vm.status.reason ?? "", /^no live host has 2 free CPU/);
    }, { guest: false }),
});

Deno.test({
  name:
    "a VM whose next try is ten minutes away is placed within seconds of a host gaining room",
  ...noSanitize,
  fn: () =>
    withCluster(async (c) => {
      // Created before any worker runs: pending, its vm.create queued.
      const app = createApp({ store: c.store });
      const r = await post(app, { name: "big", cpus: 2, memory: 128 });
      assert.equal(r.status, 201);
      const id = r.body.vm.id as string;
      const tid = r.body.task.id as string;
      // Far into its back-off: due in ten minutes.
      const task = (await c.store.get(keys.task(tid), Task))!;
      const entry = (await c.store.get(keys.queue("any", tid), QueueEntry))!;
      const later = Date.now() + 600_000;
      assert.ok(
        (await c.store.txn()
          .ifModRevision(task.key, task.modRevision)
          .put(task.key, { ...task.value, notBefore: later })
          .put(entry.key, { ...entry.value, notBefore: later })
          .commit()).ok,
      );
      await c.addWorker({ name: "h1", cpus: 1, env: { UCLOUD_DRIVER: "sim" } });
      await waitFor("h1 alive", () => c.store.get(keys.alive("h1"), Alive));
      // h1 is too small: nothing wakes the VM.
      await new Promise((res) => setTimeout(res, 1000));
      assert.equal(
        (await c.store.get(keys.vm(id), Vm))!.value.status.host,
        undefined,
      );
      // A host with room appears (registered by hand, no worker needed).
      const lease = await grant(c.store);
      try {
        await register(c.store, lease, [{
          name: "h2",
          cpus: 4,
          memoryMiB: 4096,
        }]);
        const placed = await waitFor(
          "the VM placed on h2",
          async () => {
            const v = (await c.store.get(keys.vm(id), Vm))?.value;
            return v?.status.host === "h2" ? v : null;
          },
          60_000,
        );
        assert.equal(placed.status.phase, "scheduled");
        assert.ok(
          Date.now() < later - 500_000,
          "woken, not at the back-off's end",
        );
      } finally {
        await revoke(c.store, lease);
      }
    }, { guest: false }),
});

placementTest(
  "scheduler: a user's VMs waiting for capacity",
  async ({ step, connect, cacheFor, config }) => {
    await step(
      "at most maxPendingVmsPerUser of a user's VMs wait: one more that fits nowhere is refused with 409, another user's is not, a delete frees a place",
      async () => {
        const { store, lease, deps } = await oneSmallHost(
          { connect, cacheFor, config },
          2,
        );
        const alice = { name: "alice", admin: false };
        const big = WAITING_VM;
        const a1 = await createVm(deps, alice, { ...big, name: "a1" });
        const a2 = await createVm(deps, alice, { ...big, name: "a2" });
        for (const a of [a1, a2]) assert.equal(a.vm.status.phase, "pending");
        await assert.rejects(
          () => createVm(deps, alice, { ...big, name: "a3" }),
          (err: Error) =>
            err instanceof ConflictError &&
            /^Cannot create VM: alice has 2 VM\(s\) waiting for capacity, at most 2 \(scheduler\.maxPendingVmsPerUser\)/
              .test(err.message) &&
            /This one would wait too: no live host has 2 free CPU\(s\)/.test(
              err.message,
            ),
        );
        // A VM that fits is placed as ever.
        const small = await createVm(deps, alice, {
          ...big,
          name: "s",
          cpus: 1,
        });
        assert.equal(small.vm.status.phase, "scheduled");
        // Bob has his own bound.
        const bob = { name: "bob", admin: false };
        const b1 = await createVm(deps, bob, { ...big, name: "b1" });
        assert.equal(b1.vm.status.phase, "pending");
        // Deleting one of alice's waiting VMs frees a place at once.
        await deleteVm(deps, alice, a1.vm.id);
        const a3 = await createVm(deps, alice, { ...big, name: "a3" });
        assert.equal(a3.vm.status.phase, "pending");

        // Over HTTP: 409 with the message.
        const app = createApp({ store, config: deps.config });
        for (const name of ["l1", "l2"]) {
          assert.equal((await post(app, { ...big, name })).status, 201);
        }
        const refused = await post(app, { ...big, name: "l3" });
        assert.equal(refused.status, 409);
        assert.match(
          refused.body.error.message,
          /local has 2 VM\(s\) waiting for capacity, at most 2/,
        );
        // 0: no bound.
        const free = {
          ...deps,
          config: {
            ...deps.config,
            scheduler: SchedulerConfig.parse({ maxPendingVmsPerUser: 0 }),
          },
        };
        const a4 = await createVm(free, alice, { ...big, name: "a4" });
        assert.equal(a4.vm.status.phase, "pending");
        await revoke(store, lease);
      },
    );
  },
);
