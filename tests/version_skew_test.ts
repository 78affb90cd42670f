/**
 * Rolling upgrades: workers of two versions against one etcd, as during an
 * upgrade. The old worker runs from a checkout of the last commit before
 * documents carried `schemaVersion` (`git archive`, removed after); the new
 * ones run this checkout. The old code cannot be made robust after the
 * fact, so the test asks what a rolling upgrade needs: the new code reads
 * what the old one writes (and the old one what the new one writes), and
 * keeps the fields of a yet newer version (written here with the raw etcd
 * client, with a higher `schemaVersion`) when it writes documents back.
 * Sim driver: one plain process per VM.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { SCHEMA_VERSION } from "../core/documents.ts";
import { keys, newId } from "../core/keys.ts";
import { PlacementCache } from "../scheduler/cache.ts";
import { Alloc, Vm } from "../core/schemas.ts";
import { enqueue, newTask } from "../core/task_doc.ts";
import { usage } from "../scheduler/resources.ts";
import {
  type Cluster,
  createVm,
  simPids,
  waitFor,
  withCluster,
  type WorkerProc,
} from "./helpers/cluster.ts";
import { checkout, type Doc, editRaw, getRaw, putRaw } from "./helpers/skew.ts";

/** The last commit whose documents carry no `schemaVersion`. */
const OLD_COMMIT = Deno.env.get("UCLOUD_SKEW_OLD_COMMIT") ??
  "35ec7c092acd3c093f2b8f6d8cc01b462e940629";
const SIM = { UCLOUD_DRIVER: "sim" };
type App = ReturnType<typeof createApp>;

function vmState(c: Cluster, id: string, phase: string, host?: string) {
  return waitFor(
    `vm ${id} ${phase}${host ? ` on ${host}` : ""}`,
    async () => {
      const v = (await c.store.get(keys.vm(id), Vm))?.value;
      return v?.status.phase === phase && (!host || v.status.host === host) &&
        v;
    },
    45_000,
    50,
  );
}

async function action(app: App, id: string, what: "stop" | "start") {
  const r = await app.request(`/v1/vms/${id}/${what}`, { method: "POST" });
  assert.equal(r.status, 202, await r.clone().text());
}

/** A host dies: its worker, its fencer and its VMs' processes. */
async function killHost(w: WorkerProc) {
  await w.kill("SIGKILL");
  await w.killFencer();
  for (const pid of [...(await simPids(w.stateDir)).values()].flat()) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

/**
 * A pending copy of `like` named `name`, with its `vm.create` queued for
 * the worker of host old only (the old code places it); its id.
 */
async function placeByOldCode(
  c: Cluster,
  like: Vm,
  name: string,
): Promise<string> {
  const now = new Date();
  const vm: Vm = {
    ...like,
    id: newId("vm"),
    spec: { ...like.spec, name, cpus: 1, memory: 128 },
    status: { phase: "pending", updatedAt: now.toISOString() },
    createdAt: now.toISOString(),
  };
  const task = newTask({
    kind: "vm.create",
    target: "old",
    payload: { vm: vm.id },
    owner: vm.owner,
    maxAttempts: 3,
    now,
  });
  const txn = c.store.txn().ifAbsent(keys.vm(vm.id)).put(keys.vm(vm.id), vm);
  assert.ok((await enqueue(txn, task).commit()).ok);
  return vm.id;
}

/** Fields of a yet newer version: top level and status (old code strips them). */
const FUTURE = { schemaVersion: 99, future: { labels: ["a"] } };

Deno.test("an old and a new worker side by side: create, stop, start and failover across versions; the new code keeps a newer version's fields", async () => {
  const old = await checkout(OLD_COMMIT);
  try {
    await withCluster(async (c) => {
      // host/new1 as a newer version left it: its registration keeps `rack`.
      await putRaw(c, keys.host("new1"), {
        schemaVersion: 99,
        name: "new1",
        capacity: { cpus: 4, memoryMiB: 2048 },
        addresses: [],
        os: "linux",
        drivers: ["sim"],
        state: "active",
        registeredAt: "2026-01-01T00:00:00Z",
        rack: "r7",
      });
      // A small host whose old code packs: a VM the new code reserves
      // there fills it, and the old code must see that.
      const oldW = await c.addWorker({
        name: "old",
        cpus: 2,
        memoryMiB: 1024,
        env: { ...SIM, UCLOUD_SCHEDULER_POLICY: "pack" },
        ...(old ? { root: old } : {}),
      });
      const new1 = await c.addWorker({ name: "new1", env: SIM });
      await waitFor(
        "both hosts alive",
        async () => (await c.store.count(keys.alives)) === 2,
        60_000,
      );
      const host1 = await getRaw(c, keys.host("new1"));
      assert.equal(host1.rack, "r7");
      assert.equal(host1.schemaVersion, SCHEMA_VERSION);
      assert.equal(
        (await getRaw(c, keys.host("old"))).schemaVersion,
        old ? undefined : SCHEMA_VERSION,
      );

      // The new code places the first VM (the API's inline placement,
      // packing): it fills host old. The old code places the second.
      const cache = PlacementCache.start(c.store);
      const app = createApp({
        store: c.store,
        config: {
          tasks: c.config.tasks,
          scheduler: { ...c.config.scheduler, policy: "pack" },
        },
      });
      let a: string, b: string;
      try {
        assert.ok(await cache.waitReady(30_000), "placement cache ready");
        const r = await app.request("/v1/vms", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name: "a", cpus: 2, memory: 1024 }),
        });
        assert.equal(r.status, 201, await r.clone().text());
        const placed = (await r.json()).vm as Vm;
        assert.equal(placed.status.host, "old", "placed inline");
        a = placed.id;
        b = await placeByOldCode(c, placed, "b");
      } finally {
        await cache.close();
      }
      const first = await vmState(c, a, "running");
      const second = await vmState(c, b, "running");
      assert.notEqual(first.status.host, second.status.host, "spread");
      assert.equal(second.status.host, "new1", "host old is full");
      const old1 = await c.store.get(keys.alloc("old"), Alloc);
      assert.deepEqual(
        usage(old1?.value ?? null),
        { cpus: 2, memoryMiB: 1024, vms: 1 },
        "host old still holds the first VM",
      );
      const [vOld, vNew] = first.status.host === "old" ? [a, b] : [b, a];
      // The old code wrote the status of its VM: no schemaVersion.
      assert.equal(
        (await getRaw(c, keys.vm(vOld))).schemaVersion,
        old ? undefined : SCHEMA_VERSION,
      );

      for (const id of [vOld, vNew]) {
        await editRaw(c, keys.vm(id), (d) => ({
          ...d,
          ...FUTURE,
          status: { ...d.status, progressDetail: "x" },
        }));
      }
      for (const id of [vOld, vNew]) await action(app, id, "stop");
      await vmState(c, vOld, "stopped");
      await vmState(c, vNew, "stopped");
      for (const id of [vOld, vNew]) await action(app, id, "start");
      await vmState(c, vOld, "running", "old");
      await vmState(c, vNew, "running", "new1");
      const after = await getRaw(c, keys.vm(vNew));
      assert.equal(after.schemaVersion, SCHEMA_VERSION);
      assert.deepEqual(after.future, FUTURE.future);
      assert.equal(after.status.progressDetail, "x");

      // A task document of a newer version, claimed by the new worker.
      const task = newId("t");
      const now = new Date().toISOString();
      await putRaw(c, keys.task(task), {
        schemaVersion: 99,
        id: task,
        kind: "vm.start",
        target: "new1",
        payload: { vm: vNew, why: "future" },
        state: "queued",
        attempts: 0,
        maxAttempts: 3,
        notBefore: 0,
        createdAt: now,
        updatedAt: now,
        history: [{ at: now, state: "queued", origin: "api-v99" }],
        priority: 7,
      });
      await putRaw(c, keys.queue("new1", task), { notBefore: 0 });
      const done = await waitFor("the newer task done", async () => {
        const t = await getRaw(c, keys.task(task));
        return t.state === "succeeded" && t;
      }, 30_000);
      assert.equal(done.schemaVersion, SCHEMA_VERSION);
      assert.equal(done.priority, 7);
      assert.deepEqual(done.payload, { vm: vNew, why: "future" });
      assert.equal(
        (done.history as { origin?: string }[])[0].origin,
        "api-v99",
      );

      // The old host dies: the new worker evacuates what the old code wrote.
      await killHost(oldW);
      await vmState(c, vOld, "running", "new1");
      assert.equal((await getRaw(c, keys.vm(vOld))).schemaVersion, 1);

      // Only new code now: newer fields in the spec too, and a failover.
      const new2 = await c.addWorker({ name: "new2", env: SIM });
      await waitFor(
        "new2 alive",
        async () => (await c.store.count(keys.alives)) === 2,
        60_000,
      );
      await editRaw(c, keys.vm(vNew), (d) => ({
        ...d,
        spec: { ...d.spec, gpu: "a100" },
      }));
      await killHost(new1);
      await vmState(c, vNew, "running", "new2");
      await vmState(c, vOld, "running", "new2");
      const moved = await getRaw(c, keys.vm(vNew));
      assert.equal(moved.schemaVersion, SCHEMA_VERSION);
      assert.deepEqual(moved.future, FUTURE.future);
      assert.equal(moved.status.progressDetail, "x");
      assert.equal(moved.spec.gpu, "a100");
      assert.equal((await getRaw(c, keys.host("new1"))).rack, "r7");
      assert.equal((await simPids(new2.stateDir)).size, 2);
    }, { guest: false });
  } finally {
    if (old) await Deno.remove(old, { recursive: true });
  }
});

Deno.test("an unknown field and corrupt documents in vm/ stop neither listing, placement nor the worker's monitor", async () => {
  await withCluster(async (c) => {
    const w = await c.addWorker({ name: "h1", env: SIM });
    await waitFor(
      "h1 alive",
      async () => (await c.store.count(keys.alives)) === 1,
      30_000,
    );
    const cache = PlacementCache.start(c.store);
    try {
      await putRaw(c, keys.vm("vm-junk1"), "{not json");
      await putRaw(c, keys.vm("vm-junk2"), { id: "vm-junk2", owner: 1 });
      await putRaw(c, keys.host("junk"), "]");
      await putRaw(c, keys.task("t-junk"), "{");
      await putRaw(c, keys.queue("h1", "t-junk"), { notBefore: 0 });
      await putRaw(c, keys.vm("vm-future"), {
        schemaVersion: 99,
        id: "vm-future",
        owner: "admin",
        spec: { name: "f", cpus: 1, memory: 128, image: "tiny", gpu: "a" },
        nics: [],
        desired: "stopped",
        status: { phase: "stopped", updatedAt: "t", hint: "h" },
        createdAt: "t",
        movable: true,
      });
      const app = createApp({ store: c.store });
      // Placement: the API's (cache) and the worker's start.
      const id = (await createVm(app, "ok1")).id;
      const vm = await vmState(c, id, "running", "h1");

      const list = await app.request("/v1/vms");
      assert.equal(list.status, 200);
      const items = (await list.json()).items as Doc[];
      assert.deepEqual(items.map((v) => v.id).sort(), [id, "vm-future"].sort());
      const f = items.find((v) => v.id === "vm-future")!;
      assert.equal(f.movable, true);
      assert.equal(f.spec.gpu, "a");
      const one = await app.request("/v1/vms/vm-junk1");
      assert.equal(one.status, 500);
      assert.match((await one.json()).error.message, /vm\/vm-junk1/);

      // The monitor still sees crashes ...
      const pid = (vm.status.handle as { pid: number }).pid;
      Deno.kill(pid, "SIGKILL");
      const again = await waitFor("restarted after the crash", async () => {
        const v = (await c.store.get(keys.vm(id), Vm))!.value;
        const p = (v.status.handle as { pid?: number } | undefined)?.pid;
        return v.status.phase === "running" && p !== pid && v;
      }, 30_000);
      assert.equal(again.status.crashes?.length, 1);
      // ... and does not take a VM whose document it cannot read for gone.
      const good = await getRaw(c, keys.vm(id));
      await putRaw(c, keys.vm(id), "garbage");
      await waitFor(
        "the worker read the garbage",
        async () =>
          (await w.log()).includes(
            `"key":"vm/${id}","prefix":"vm","reason":"not JSON"`,
          ),
        15_000,
      );
      // At least two more monitor passes (1 s apart).
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal((await simPids(w.stateDir)).get(id)?.length, 1);
      await putRaw(c, keys.vm(id), good);

      const metrics = await (await app.request("/metrics", {}, {
        remoteAddr: { hostname: "127.0.0.1" },
      })).text();
      const m = metrics.match(
        /ucloud_store_unreadable_documents_total\{prefix="vm"\} (\d+)/,
      );
      assert.ok(m && Number(m[1]) > 0, metrics);
      const log = await w.log();
      assert.match(log, /"msg":"unreadable document".*"key":"vm\/vm-junk1"/);
      assert.match(log, /"key":"vm\/vm-junk2".*"reason":"schema: owner/);
      // The unreadable task is put aside, not claimed again in a loop.
      assert.match(log, /"key":"task\/t-junk".*"reason":"not JSON"/);
      assert.doesNotMatch(log, /task runner failed/);
    } finally {
      await cache.close();
    }
  }, { guest: false });
});
