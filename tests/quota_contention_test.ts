/**
 * Usage documents under load, on a real etcd. After an upgrade no user has
 * `usage/<user>`: concurrent first creates of one user read the cluster's
 * VM documents about once, not once per create and retry (counted with
 * etcd's own metrics, `etcd_network_client_grpc_sent_bytes_total` and
 * `etcd_mvcc_range_total`); the maintenance round writes every user's usage
 * from one paged pass, after which a new user's first create reads no
 * listing at all. And a user deleting many VMs at once: every `vm.delete`
 * ends in its first run of the handler (a lost usage compare retries only
 * the final transaction), with the usage exact.
 */
import assert from "node:assert/strict";
import { QuotaConfig } from "../core/config_quota.ts";
import { keys } from "../core/keys.ts";
import { NO_USAGE, Usage } from "../core/quota_schemas.ts";
import { Vm } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { createVm } from "../resources/vms/mod.ts";
import { maintenanceOnce } from "../tasks/maintenance_round.ts";
import { completeOutcome } from "../tasks/outcome.ts";
import { vmDelete } from "../tasks/vm_delete.ts";
import { noSanitize } from "./helpers/api.ts";
import { type Bench, vmDoc, withBench } from "./helpers/task_ctx.ts";

const small = { name: "s", cpus: 1, memory: 128, image: "tiny" };
const OTHERS = 30;
const PER_USER = 100;

/** etcd's counters of range requests and bytes sent to clients. */
async function etcdCounters(b: Bench) {
  const res = await fetch(`${b.config.etcd.endpoints[0]}/metrics`);
  const text = await res.text();
  const value = (name: string) =>
    Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? NaN);
  return {
    ranges: value("etcd_mvcc_range_total"),
    bytes: value("etcd_network_client_grpc_sent_bytes_total"),
  };
}

/** Ranges and bytes etcd served while `f` ran. */
async function costOf(b: Bench, f: () => Promise<unknown>) {
  const a = await etcdCounters(b);
  await f();
  const z = await etcdCounters(b);
  return { ranges: z.ranges - a.ranges, bytes: z.bytes - a.bytes };
}

/** VM documents of OTHERS users, written as before quotas (no usage). */
async function putOthers(store: Store) {
  for (let u = 0; u < OTHERS; u++) {
    const txn = store.txn();
    for (let i = 0; i < PER_USER; i++) {
      const id = `vm-u${u}-${i}`;
      txn.put(
        keys.vm(id),
        vmDoc(id, { phase: "stopped" }, { owner: `user${u}` }),
      );
    }
    await txn.commit();
  }
}

async function usageOf(store: Store, owner: string): Promise<Usage | null> {
  return (await store.get(keys.usage(owner), Usage))?.value ?? null;
}

Deno.test({
  name:
    "concurrent first creates of a user without usage read the cluster's VMs about once; the maintenance round backfills usage",
  ...noSanitize,
  fn: (t) =>
    withBench(async (b) => {
      const deps = {
        store: b.store,
        config: { ...b.config, quota: QuotaConfig.parse({}) },
      };
      await putOthers(b.store);
      const all = await costOf(b, () => b.store.list(keys.vms, Vm));
      assert.ok(all.bytes > 300_000, `one listing: ${all.bytes} bytes`);

      await t.step({
        name: "20 concurrent first creates of one user",
        ...noSanitize,
        fn: async () => {
          const who = { name: "newbie", admin: false };
          const cost = await costOf(b, () =>
            Promise.all(
              Array.from(
                { length: 20 },
                (_, i) => createVm(deps, who, { ...small, name: `n${i}` }),
              ),
            ));
          console.log("20 first creates", cost, "one listing", all);
          assert.ok(
            cost.bytes < 2.5 * all.bytes,
            `read ${cost.bytes} bytes, one listing of vm/ is ${all.bytes}`,
          );
          assert.deepEqual(await usageOf(b.store, "newbie"), {
            ...NO_USAGE,
            vms: 20,
            cpus: 20,
            memoryMiB: 2560,
          });
        },
      });

      await t.step({
        name:
          "the maintenance round writes every user's usage; a new user's first creates list nothing",
        ...noSanitize,
        fn: async () => {
          const r = await maintenanceOnce(b.store, b.config, { by: "test" });
          assert.equal(r.ran, true, r.reason);
          assert.equal(r.usage?.written, OTHERS, JSON.stringify(r.usage));
          for (const u of [0, OTHERS - 1]) {
            assert.deepEqual(await usageOf(b.store, `user${u}`), {
              ...NO_USAGE,
              vms: PER_USER,
              cpus: PER_USER,
              memoryMiB: 128 * PER_USER,
            });
          }
          // Written already by its creates: left as it was.
          assert.equal((await usageOf(b.store, "newbie"))?.vms, 20);
          const late = { name: "late", admin: false };
          const cost = await costOf(b, () =>
            Promise.all(
              Array.from(
                { length: 10 },
                (_, i) => createVm(deps, late, { ...small, name: `l${i}` }),
              ),
            ));
          console.log("10 first creates after the backfill", cost);
          assert.ok(
            cost.bytes < all.bytes / 4,
            `read ${cost.bytes} bytes, one listing of vm/ is ${all.bytes}`,
          );
          assert.equal((await usageOf(b.store, "late"))?.vms, 10);
          // A second round finds the backfill done and writes nothing.
          const again = await maintenanceOnce(b.store, b.config, { by: "t" });
          assert.equal(again.usage?.written, 0);
        },
      });
    }),
});

Deno.test({
  name:
    "a user deleting 20 VMs at once: every vm.delete ends in its first handler run, usage exact",
  ...noSanitize,
  fn: () =>
    withBench(async (b) => {
      const worker = await b.incarnation("h1");
      const ids = Array.from({ length: 20 }, (_, i) => `vm-g${i}`);
      for (const id of ids) {
        await b.putVm(
          vmDoc(id, {
            phase: "deleting",
            host: "h1",
            incarnation: worker.lease,
          }, { owner: "gina", desired: "deleted" }),
        );
      }
      // Exact before the deletes: 20 VMs of `small`.
      await b.store.txn().put(keys.usage("gina"), {
        ...NO_USAGE,
        vms: 20,
        cpus: 20,
        memoryMiB: 2560,
      }).commit();
      assert.equal((await usageOf(b.store, "gina"))?.vms, 20);
      const ctxs = await Promise.all(
        ids.map((id) => b.context(worker, "vm.delete", { vm: id })),
      );
      const done = await Promise.all(ctxs.map(async (ctx) =>
        await completeOutcome(b.store, ctx.task, worker, await vmDelete(ctx))
      ));
      assert.deepEqual(
        ids.filter((_, i) =>
          !done[i]
        ),
        [],
        "deletes that lost their compares in their first run",
      );
      assert.equal(
        (await b.store.list(keys.vms, Vm)).items.filter((v) =>
          v.value.owner === "gina"
        ).length,
        0,
      );
      assert.deepEqual(await usageOf(b.store, "gina"), NO_USAGE);
    }),
});
