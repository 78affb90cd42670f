/**
 * Per-user quotas against a real etcd: a create over a limit is refused
 * (403 naming the resource, used, requested and allowed) and writes
 * nothing; concurrent creates of one user never pass a limit (the usage
 * document's compare); `vm.delete` gives the quota back in the
 * transaction that removes the VM; a user from before quotas gets exact
 * usage computed from their documents; `host.failed` deleting a VM gives
 * its quota back too; and the bound on a user's pending
 * VMs holds under concurrent creates.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { QuotaConfig } from "../core/config_quota.ts";
import { ConflictError, QuotaError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import { Usage } from "../core/quota_schemas.ts";
import { Vm } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { createNetwork, deleteNetwork } from "../resources/networks/mod.ts";
import {
  changeUsage,
  readUsage,
  setQuota,
  showQuota,
  vmAmounts,
} from "../resources/quotas/mod.ts";
import { createVm, deleteVm } from "../resources/vms/mod.ts";
import { hostFailed } from "../tasks/host_failed.ts";
import { complete } from "../tasks/queue.ts";
import { vmDelete } from "../tasks/vm_delete.ts";
import { call, dump, noSanitize } from "./helpers/api.ts";
import {
  oneSmallHost,
  placementTest,
  WAITING_VM,
} from "./helpers/placement.ts";
import { type Bench, vmDoc, withBench } from "./helpers/task_ctx.ts";

const alice = { name: "alice", admin: false };
const admin = { name: "root", admin: true };
const small = { name: "s", cpus: 2, memory: 128, image: "tiny" };

async function vmsOf(store: Store, owner: string): Promise<Vm[]> {
  const { items } = await store.list(keys.vms, Vm);
  return items.map((i) => i.value).filter((v) => v.owner === owner);
}

async function usageOf(store: Store, owner: string): Promise<Usage | null> {
  return (await store.get(keys.usage(owner), Usage))?.value ?? null;
}

/** Runs `vm.delete` of `id` to its end, as a worker would (reruns). */
async function runDelete(b: Bench, id: string): Promise<void> {
  const worker = await b.incarnation("h1");
  const ctx = await b.context(worker, "vm.delete", { vm: id });
  for (let i = 0; i < 20; i++) {
    const out = await vmDelete(ctx);
    if (await complete(b.store, ctx.task, worker, out.result, out.txn)) return;
  }
  throw new Error(`vm.delete of ${id} kept losing its compares`);
}

Deno.test({
  name: "quotas: limits, usage and concurrency on a real etcd",
  ...noSanitize,
  fn: (t) =>
    withBench(async (b) => {
      const step = (name: string, fn: () => Promise<void>) =>
        t.step({ name, ...noSanitize, fn });
      const deps = {
        store: b.store,
        config: { ...b.config, quota: QuotaConfig.parse({ cpus: 3 }) },
      };

      await step(
        "createVm() over quota throws QuotaError naming the resource, used and allowed, and writes nothing",
        async () => {
          await createVm(deps, alice, small);
          const before = await dump(b.store);
          await assert.rejects(
            () => createVm(deps, alice, { ...small, name: "s2" }),
            (err: Error) =>
              err instanceof QuotaError &&
              err.quota.resource === "cpus" && err.quota.used === 2 &&
              err.quota.requested === 2 && err.quota.allowed === 3,
          );
          // Over HTTP as alice: 403 with the numbers; etcd unchanged.
          const app = createApp({
            store: b.store,
            config: deps.config,
            auth: async (c, next) => {
              c.set("principal", alice);
              await next();
            },
          });
          const r = await call(app, "POST", "/v1/vms", {
            json: { ...small, name: "s3" },
          });
          assert.equal(r.status, 403, JSON.stringify(r.body));
          assert.deepEqual(r.body.error.quota, {
            resource: "cpus",
            used: 2,
            requested: 2,
            allowed: 3,
          });
          assert.match(r.body.error.message, /over quota for cpus/);
          assert.deepEqual(await dump(b.store), before);
          // One core more fits.
          await createVm(deps, alice, { ...small, name: "s4", cpus: 1 });
          assert.deepEqual(await usageOf(b.store, "alice"), {
            vms: 2,
            cpus: 3,
            memoryMiB: 256,
            diskMiB: 0,
            networks: 0,
          });
        },
      );

      await step(
        "20 concurrent creates against a quota of 5 VMs create exactly 5",
        async () => {
          await setQuota(deps, admin, "carol", { vms: 5, cpus: null });
          const carol = { name: "carol", admin: false };
          const rs = await Promise.allSettled(
            Array.from(
              { length: 20 },
              (_, i) => createVm(deps, carol, { ...small, name: `c${i}` }),
            ),
          );
          const ok = rs.filter((r) => r.status === "fulfilled");
          const refused = rs.flatMap((r) =>
            r.status === "rejected" ? [r.reason] : []
          );
          assert.equal(ok.length, 5, String(refused[0]));
          for (const e of refused) assert.ok(e instanceof QuotaError, `${e}`);
          assert.equal((await vmsOf(b.store, "carol")).length, 5);
          assert.equal((await usageOf(b.store, "carol"))?.vms, 5);
          assert.equal((await usageOf(b.store, "carol"))?.cpus, 10);
        },
      );

      await step(
        "vm.delete gives the quota back when it removes the VM, also for concurrent deletes",
        async () => {
          const vms = await vmsOf(b.store, "carol");
          // Marked for deletion, a VM still counts.
          for (const vm of vms) await deleteVm(deps, admin, vm.id);
          await assert.rejects(
            () => createVm(deps, { name: "carol", admin: false }, small),
            QuotaError,
          );
          await Promise.all(vms.map((vm) => runDelete(b, vm.id)));
          assert.equal((await vmsOf(b.store, "carol")).length, 0);
          assert.deepEqual(await usageOf(b.store, "carol"), {
            vms: 0,
            cpus: 0,
            memoryMiB: 0,
            diskMiB: 0,
            networks: 0,
          });
          await createVm(deps, { name: "carol", admin: false }, small);
        },
      );

      await step(
        "networks count: over quota is QuotaError, a delete frees it",
        async () => {
          await setQuota(deps, admin, "dave", { networks: 1 });
          const dave = { name: "dave", admin: false };
          const n = await createNetwork(deps, dave, {
            name: "lan",
            kind: "private",
          });
          await assert.rejects(
            () => createNetwork(deps, dave, { name: "lan2", kind: "private" }),
            (err: Error) =>
              err instanceof QuotaError && err.quota.resource === "networks" &&
              err.quota.used === 1 && err.quota.allowed === 1,
          );
          await deleteNetwork(b.store, dave, n.id);
          assert.equal((await usageOf(b.store, "dave"))?.networks, 0);
          await createNetwork(deps, dave, { name: "lan3", kind: "private" });
        },
      );

      await step(
        "a user from before quotas gets exact usage computed from their documents",
        async () => {
          for (const id of ["vm-old-1", "vm-old-2"]) {
            await b.putVm(
              vmDoc(id, { phase: "stopped" }, {
                owner: "erin",
                spec: { name: id, cpus: 2, memory: 256, image: "t", disk: 1 },
              }),
            );
          }
          assert.equal(await usageOf(b.store, "erin"), null);
          const erin = { name: "erin", admin: false };
          const shown = await showQuota(deps, erin, "erin");
          assert.deepEqual(shown.usage, {
            vms: 2,
            cpus: 4,
            memoryMiB: 512,
            diskMiB: 2048,
            networks: 0,
          });
          // Showing writes nothing; the first change writes it.
          assert.equal(await usageOf(b.store, "erin"), null);
          const free = { ...deps, config: { ...deps.config, quota: {} } };
          // A create and a delete at once: each counts the other.
          await Promise.all([
            createVm(free, erin, { ...small, name: "new" }),
            runDelete(b, "vm-old-1"),
          ]);
          assert.deepEqual(await usageOf(b.store, "erin"), {
            vms: 2,
            cpus: 4,
            memoryMiB: 384,
            diskMiB: 1024,
            networks: 0,
          });
        },
      );

      await step(
        "host.failed deleting a VM that was being deleted gives its quota back",
        async () => {
          const dead = await b.incarnation("h9", 1);
          await b.store.revokeLease(dead.lease);
          const helper = await b.incarnation("h8");
          const frank = { name: "frank", admin: false };
          await createVm(deps, frank, small);
          await b.putVm(
            vmDoc(
              "vm-f",
              { phase: "deleting", host: "h9", incarnation: dead.lease },
              { owner: "frank", desired: "deleted" },
            ),
          );
          // The document written by hand: usage counts the first VM only.
          assert.equal((await usageOf(b.store, "frank"))?.vms, 1);
          await changeUsage(
            b.store.txn(),
            await readUsage(b.store, "frank"),
            vmAmounts({ cpus: 1, memory: 128 }),
          ).commit();
          const ctx = await b.context(helper, "host.failed", {
            host: "h9",
            incarnation: dead.lease,
          });
          const out = await hostFailed(ctx);
          assert.deepEqual((out.result as { deleted: string[] }).deleted, [
            "vm-f",
          ]);
          assert.deepEqual(await usageOf(b.store, "frank"), {
            vms: 1,
            cpus: 2,
            memoryMiB: 128,
            diskMiB: 0,
            networks: 0,
          });
        },
      );
    }),
});

placementTest(
  "quotas: a user's pending VMs",
  async ({ step, connect, cacheFor, config }) => {
    await step(
      "12 concurrent creates that fit nowhere leave exactly maxPendingVmsPerUser (3) pending, the rest 409",
      async () => {
        const { store, deps } = await oneSmallHost(
          { connect, cacheFor, config },
          3,
        );
        const big = WAITING_VM;
        const rs = await Promise.allSettled(
          Array.from(
            { length: 12 },
            (_, i) => createVm(deps, alice, { ...big, name: `p${i}` }),
          ),
        );
        const ok = rs.filter((r) => r.status === "fulfilled");
        const refused = rs.flatMap((r) =>
          r.status === "rejected" ? [r.reason] : []
        );
        assert.equal(ok.length, 3, String(refused[0]));
        for (const e of refused) {
          assert.ok(
            e instanceof ConflictError &&
              /waiting for capacity/.test(e.message),
            `${e}`,
          );
        }
        const pending = (await vmsOf(store, "alice")).filter((v) =>
          v.status.phase === "pending"
        );
        assert.equal(pending.length, 3);
      },
    );
  },
);
