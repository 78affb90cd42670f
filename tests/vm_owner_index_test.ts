/**
 * The owner index (`vmowner/<owner>/<vm>`, resources/vms/owner_index.ts)
 * against a real etcd: a user's VM listing reads only that user's index
 * keys and VM documents beside 1000 other users' VMs (keys and requests
 * counted on the store's client), a listing begun before the backfill goes
 * on after it, deletes leave no entry, the maintenance round backfills the
 * VMs of an older version, and concurrent creates, deletes and a backfill
 * leave the index naming exactly the VM documents.
 */
import assert from "node:assert/strict";
import type { z } from "zod";
import { QuotaConfig } from "../core/config_quota.ts";
import { idOf, keys } from "../core/keys.ts";
import { type Vm, Vm as VmSchema } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { createVm, listVms } from "../resources/vms/mod.ts";
import { indexOwner } from "../resources/vms/owner_index.ts";
import { hostFailed } from "../tasks/host_failed.ts";
import { maintenanceOnce } from "../tasks/maintenance_round.ts";
import { completeOutcome } from "../tasks/outcome.ts";
import { vmDelete } from "../tasks/vm_delete.ts";
import type { WorkerId } from "../tasks/queue.ts";
import { backfillOwners } from "../tasks/vm_owner_backfill.ts";
import { headerAuth, noSanitize } from "./helpers/api.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import { allPages, countReads, putAll, vmId } from "./helpers/pages.ts";
import { type Bench, vmDoc, withBench } from "./helpers/task_ctx.ts";

const OTHERS = 1000;
const small = { name: "s", cpus: 1, memory: 128, image: "tiny" };

/** Every owner index entry, as `owner/vm`. */
async function indexed(store: Store): Promise<string[]> {
  return (await store.keys(keys.vmOwners)).map((k) =>
    `${decodeURIComponent(k.split("/")[1])}/${idOf(k)}`
  ).sort();
}

/** Every VM document, as `owner/vm`. */
async function documents(store: Store): Promise<string[]> {
  return (await store.list(keys.vms, VmSchema)).items.map((kv) =>
    `${kv.value.owner}/${kv.value.id}`
  ).sort();
}

/** What the VM resource needs, on `b`'s store and config (no quotas). */
function depsOf(b: Bench) {
  return {
    store: b.store,
    config: { ...b.config, quota: QuotaConfig.parse({}) },
  };
}

/** Runs `vm.delete` of `id` on `worker` to its end. */
async function deleteVm(b: Bench, worker: WorkerId, id: string) {
  const ctx = await b.context(worker, "vm.delete", { vm: id });
  assert.ok(
    await completeOutcome(b.store, ctx.task, worker, await vmDelete(ctx)),
  );
}

Deno.test({
  name:
    "a user's VM listing reads only their owner index keys and VMs beside 1000 other users' VMs",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ fresh, step, create }) => {
      const { store, app } = fresh({ auth: headerAuth });
      const mine: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await create(app, { ...small, name: `c${i}` }, {
          headers: { "x-user": "carol" },
        });
        mine.push(r.vm.id);
      }
      const others: [string, unknown][] = [];
      for (let n = 0; n < OTHERS; n++) {
        const vm = { ...vmDoc(vmId(n), {}), owner: `user${n}` };
        others.push([keys.vm(vm.id), vm], [keys.vmOwner(vm.owner, vm.id), {}]);
      }
      await putAll(store, others);
      const seen = countReads(store);
      const listAs = async (headers: Record<string, string>, path: string) => {
        const [keys0, requests0] = [seen.keys, seen.requests];
        const { pages } = await allPages<Vm>(app, path, headers);
        return {
          ids: pages.flat().map((v) => v.id),
          keys: seen.keys - keys0,
          requests: seen.requests - requests0,
        };
      };
      const carol = { "x-user": "carol" };
      const admin = { "x-user": "root/admin" };

      let scan = { keys: 0, requests: 0 };
      await step(
        "before the backfill, the listing reads every VM",
        async () => {
          const r = await listAs(carol, "/v1/vms");
          assert.deepEqual(r.ids, mine);
          assert.ok(r.keys > OTHERS, `${r.keys} keys read`);
          scan = r;
        },
      );

      await step(
        "a listing begun before the backfill goes on after it",
        async () => {
          const first = await allPages<Vm>(app, "/v1/vms?limit=2", carol, (n) =>
            n === 1
              ? backfillOwners(store, {
                by: "test",
                fence: () =>
                  store.txn(),
              })
                .then((b) =>
                  assert.equal(b.written, 0, JSON.stringify(b))
                )
              : Promise.resolve());
          assert.deepEqual(
            first.pages.flat().map((v) =>
              v.id
            ),
            mine,
          );
        },
      );

      await step("after it, the listing reads only carol's keys", async () => {
        const r = await listAs(carol, "/v1/vms");
        assert.deepEqual(r.ids, mine);
        console.log(
          `carol's listing beside ${OTHERS} other users' VMs: ` +
            `before ${scan.keys} keys in ${scan.requests} requests, ` +
            `after ${r.keys} keys in ${r.requests} requests`,
        );
        // Her 5 index keys and 5 VMs, and the sealing key.
        assert.ok(r.keys <= 2 * mine.length + 2, `${r.keys} keys read`);
        assert.ok(r.requests <= 4, `${r.requests} requests`);
        const byAdmin = await listAs(admin, "/v1/vms?owner=carol");
        assert.deepEqual(byAdmin.ids, mine);
        assert.ok(byAdmin.keys <= 2 * mine.length + 2, `${byAdmin.keys} keys`);
        const paged = await listAs(carol, "/v1/vms?limit=2");
        assert.deepEqual(paged.ids, mine);
        assert.ok(paged.keys <= 3 * mine.length, `${paged.keys} keys`);
        // An admin's listing of everyone still reads every VM.
        assert.equal(
          (await listAs(admin, "/v1/vms?limit=1000")).ids.length,
          OTHERS + mine.length,
        );
      });
    }),
});

Deno.test({
  name: "vm.delete and host.failed leave no owner index entry of a deleted VM",
  ...noSanitize,
  fn: () =>
    withBench(async (b) => {
      const deps = depsOf(b);
      const who = { name: "dora", admin: false };
      const { vm } = await createVm(deps, who, small);
      assert.deepEqual(await indexed(b.store), [`dora/${vm.id}`]);
      await deleteVm(b, await b.incarnation("h1"), vm.id);
      assert.equal(await b.store.get(keys.vm(vm.id), VmSchema), null);
      assert.deepEqual(await indexed(b.store), []);

      const dead = await b.incarnation("h2", 1);
      await b.store.revokeLease(dead.lease);
      const helper = await b.incarnation("h3");
      const gone = vmDoc("vm-gone", { host: "h2", incarnation: dead.lease }, {
        owner: "dora",
        desired: "deleted",
      });
      await b.putVm(gone);
      await indexOwner(b.store.txn(), gone).commit();
      const ctx = await b.context(helper, "host.failed", {
        host: "h2",
        incarnation: dead.lease,
      });
      await hostFailed(ctx);
      assert.equal(await b.store.get(keys.vm(gone.id), VmSchema), null);
      assert.deepEqual(await indexed(b.store), []);
    }),
});

Deno.test({
  name:
    "the maintenance round backfills the owner index of an older version's VMs while VMs come and go",
  ...noSanitize,
  fn: () =>
    withBench(async (b) => {
      const deps = depsOf(b);
      // VMs of a version before the index: documents without entries.
      const old = Array.from({ length: 150 }, (_, i) =>
        vmDoc(`vm-old-${String(i).padStart(3, "0")}`, {}, {
          owner: `u${i % 3}`,
        }));
      await putAll(b.store, old.map((vm) => [keys.vm(vm.id), vm]));
      const who = { name: "u1", admin: false };
      const before = await listVms(b.store, who, { limit: 1000 });
      assert.equal(before.items.length, 50);

      // Creates and deletes, old VMs and new, while the round runs.
      const worker = await b.incarnation("h1");
      const doomed = old.filter((_, i) =>
        i % 7 === 0
      ).map((v) => v.id);
      const created: string[] = [];
      const churn = (async () => {
        for (let i = 0; i < 12; i++) {
          const { vm } = await createVm(deps, {
            name: `u${i % 3}`,
            admin: false,
          }, {
            ...small,
            name: `n${i}`,
          });
          created.push(vm.id);
          await deleteVm(b, worker, doomed[i]);
          if (i % 3 === 0) {
            await deleteVm(b, worker, created[i]);
          }
        }
      })();
      const r = await maintenanceOnce(b.store, b.config, { by: "test" });
      await churn;
      assert.equal(r.ran, true, r.reason);
      assert.equal(r.owners?.fenced, false, JSON.stringify(r.owners));
      assert.equal(r.owners?.changing, 0, JSON.stringify(r.owners));
      assert.ok((r.owners?.written ?? 0) >= 150 - 12, JSON.stringify(r.owners));
      assert.deepEqual(await indexed(b.store), await documents(b.store));

      const after = await listVms(b.store, who, { limit: 1000 });
      const ids = (await documents(b.store)).filter((k) => k.startsWith("u1/"))
        .map((k) => k.slice(3));
      assert.deepEqual(after.items.map((v) => v.id), ids);
      const again = await maintenanceOnce(b.store, b.config, { by: "test" });
      assert.equal(again.owners?.done, true);
      assert.equal(again.owners?.written, 0);
    }),
});

Deno.test({
  name:
    "concurrent creates and deletes leave the owner index naming exactly the VM documents",
  ...noSanitize,
  fn: () =>
    withBench(async (b) => {
      const deps = depsOf(b);
      const worker = await b.incarnation("h1");
      await Promise.all(Array.from({ length: 24 }, async (_, i) => {
        const owner = { name: `w${i % 3}`, admin: false };
        const { vm } = await createVm(deps, owner, { ...small, name: `v${i}` });
        if (i % 2) await deleteVm(b, worker, vm.id);
      }));
      const docs = await documents(b.store);
      assert.equal(docs.length, 12);
      assert.deepEqual(await indexed(b.store), docs);
    }),
});

Deno.test({
  name:
    "backfillOwners() writes no entry for a VM deleted between its read and its write",
  ...noSanitize,
  fn: () =>
    withBench(async (b) => {
      const old = Array.from({ length: 60 }, (_, i) =>
        vmDoc(`vm-old-${String(i).padStart(2, "0")}`, {}, { owner: "eve" }));
      await putAll(b.store, old.map((vm) => [keys.vm(vm.id), vm]));
      const worker = await b.incarnation("h1");
      // The backfill reads the entries of the first page after the page:
      // the delete of a VM of that page lands in between.
      const getMany = b.store.getMany.bind(b.store);
      let first = true;
      b.store.getMany = async <T>(ks: string[], schema: z.ZodType<T>) => {
        if (first) {
          first = false;
          await deleteVm(b, worker, old[3].id);
        }
        return await getMany(ks, schema);
      };
      const r = await backfillOwners(b.store, {
        by: "test",
        fence: () =>
          b.store.txn(),
      });
      assert.equal(r.written, 59, JSON.stringify(r));
      assert.deepEqual(await indexed(b.store), await documents(b.store));
      assert.equal((await documents(b.store)).length, 59);
    }),
});
