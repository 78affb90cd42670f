/**
 * Orderly worker restarts on real worker processes (sim driver): SIGTERM
 * hands the lease to the host's fencer, which keeps it alive until the next
 * worker process adopts it; the VMs keep running and nothing fails over.
 * A hand-over nobody takes ends after `worker.handoverSeconds`.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Alive, Task, Vm } from "../core/schemas.ts";
import {
  type Cluster,
  createVm,
  simPids,
  waitFor,
  withCluster,
} from "./helpers/cluster.ts";

const SIM = { UCLOUD_DRIVER: "sim" };
const create = createVm;

async function vms(c: Cluster): Promise<Vm[]> {
  return (await c.store.list(keys.vms, Vm)).items.map((v) => v.value);
}

/** VM id -> pids of its live sim processes, for the VMs of `stateDir`. */
const sims = simPids;

async function hostFailedTasks(c: Cluster): Promise<number> {
  return (await c.store.list(keys.tasks, Task)).items
    .filter((t) => t.value.kind === "host.failed").length;
}

Deno.test("SIGTERM hands the lease to the fencer: VMs run on through 3 TTLs without a worker, the host shows handover and takes no VMs; the next worker adopts them, same pids", async () => {
  await withCluster(async (c) => {
    const app = createApp({ store: c.store });
    const w1 = await c.addWorker({ name: "h1", env: SIM });
    await waitFor("h1 alive", () => c.store.get(keys.alive("h1"), Alive));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await create(app, `k${i}`)).id);
    await waitFor(
      "VMs running",
      async () => (await vms(c)).every((v) => v.status.phase === "running"),
    );
    await c.addWorker({ name: "h2", env: SIM });
    await waitFor("h2 alive", () => c.store.get(keys.alive("h2"), Alive));
    const before = await sims(w1.stateDir);
    assert.equal(before.size, 3);
    const lease = (await c.store.get(keys.alive("h1"), Alive))!.value.lease;

    await w1.kill("SIGTERM");
    const marked = await waitFor("alive/h1 marked handover", async () => {
      const a = await c.store.get(keys.alive("h1"), Alive);
      return a?.value.handover ? a : null;
    }, 5_000);
    assert.equal(marked.value.lease, lease);
    const list = await (await app.request("/v1/hosts")).json();
    const h1 = list.items.find((h: { name: string }) => h.name === "h1");
    assert.equal(h1.handover, marked.value.handover);
    // A new VM goes to h2: h1 takes no work while it hands over.
    const fresh = await create(app, "fresh");
    const placed = await waitFor("fresh VM placed", async () => {
      const v = (await vms(c)).find((x) => x.id === fresh.id);
      return v?.status.host ? v : null;
    });
    assert.equal(placed.status.host, "h2");
    await new Promise((r) => setTimeout(r, 6_000));
    assert.deepEqual(await sims(w1.stateDir), before, "same VM processes");
    assert.equal(await hostFailedTasks(c), 0, "no failover");
    assert.equal(
      (await c.store.get(keys.alive("h1"), Alive))?.value.lease,
      lease,
      "the fencer kept the lease alive",
    );

    await w1.start();
    await waitFor("h1 adopted, no longer handing over", async () => {
      const a = await c.store.get(keys.alive("h1"), Alive);
      return a && a.value.lease === lease && !a.value.handover;
    }, 15_000);
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(await sims(w1.stateDir), before, "still the same pids");
    for (const v of (await vms(c)).filter((v) => ids.includes(v.id))) {
      assert.equal(v.status.phase, "running");
      assert.equal(v.status.host, "h1");
      assert.equal(v.status.crashes, undefined);
    }
    assert.equal(await hostFailedTasks(c), 0);
  }, { guest: false, leaseTtlSeconds: 2 });
});

Deno.test("a hand-over nobody takes ends after worker.handoverSeconds: the VMs are fenced and fail over", async () => {
  await withCluster(async (c) => {
    const app = createApp({ store: c.store });
    const env = { ...SIM, UCLOUD_HANDOVER_SECONDS: "2" };
    const w1 = await c.addWorker({ name: "h1", env });
    await waitFor("h1 alive", () => c.store.get(keys.alive("h1"), Alive));
    const id = (await create(app, "orphan")).id;
    await waitFor(
      "running",
      async () => (await vms(c))[0]?.status.phase === "running",
    );
    await c.addWorker({ name: "h2", env });
    await waitFor("h2 alive", () => c.store.get(keys.alive("h2"), Alive));
    const stopped = Date.now();
    await w1.kill("SIGTERM");
    await waitFor(
      "h1 fenced",
      async () => (await sims(w1.stateDir)).size === 0,
      15_000,
    );
    const fenced = Date.now() - stopped;
    assert.ok(
      fenced >= 2_000,
      `fenced after ${fenced} ms, not before the hand-over ended`,
    );
    const moved = await waitFor("VM running on h2", async () => {
      const v = (await vms(c)).find((x) => x.id === id);
      return v?.status.phase === "running" && v.status.host === "h2" ? v : null;
    }, 15_000);
    assert.ok(moved);
    assert.equal(await hostFailedTasks(c), 1);
    // A 4 s TTL: with 2 s the fencer's keep-alives must land within 1.5 s,
    // and on a loaded machine one did not (CI: fenced after 1693 ms), which
    // rightly fences at once; this test is about the hand-over's end.
  }, { guest: false, leaseTtlSeconds: 4 });
});
