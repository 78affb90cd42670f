/**
 * A host name belongs to one machine at a time: two real worker processes
 * with their own state directories (so their own machine ids) and the same
 * `UCLOUD_HOST`, against a real etcd, with the sim driver.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Alive, Host } from "../core/schemas.ts";
import {
  type Cluster,
  waitFor,
  withCluster,
  WorkerProc,
} from "./helpers/cluster.ts";

/** Host h1 on a machine of its own (state dir hosts/<as>). */
async function machine(c: Cluster, as: string): Promise<WorkerProc> {
  c.env.UCLOUD_DRIVER = "sim";
  return await c.addWorker({ name: as, env: { UCLOUD_HOST: "h1" } });
}

async function idOf(w: WorkerProc): Promise<string> {
  return (await Deno.readTextFile(`${w.stateDir}/machine-id`)).trim();
}

/** Waits until the worker started its fencer, so `stop()` can kill it. */
async function fencerUp(w: WorkerProc): Promise<void> {
  await waitFor(
    `${w.spec.name}'s fencer`,
    () => Deno.stat(`${w.runDir}/fencer.pid`).then(() => true),
  );
}

async function aliveH1(c: Cluster) {
  return await c.store.get(keys.alive("h1"), Alive);
}

/** Waits for the worker process to exit; returns its exit code. */
async function exitCode(w: WorkerProc, ms = 30_000): Promise<number> {
  const status = await waitFor(
    `${w.spec.name} to exit`,
    () =>
      Promise.race([
        w.child!.status,
        new Promise<null>((r) => setTimeout(() => r(null), 100)),
      ]),
    ms,
  );
  return status.code;
}

Deno.test({
  name:
    "a second machine with a host name in use is refused and exits; the first keeps its lease; after it is gone the name is taken over",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withCluster(async (c) => {
      const a = await machine(c, "m1");
      const first = await waitFor("h1 registered", () => aliveH1(c));
      await fencerUp(a);
      const idA = await idOf(a);
      const host = (await c.store.get(keys.host("h1"), Host))!.value;
      assert.equal(host.machineId, idA);

      const b = await machine(c, "m2");
      assert.notEqual(b.stateDir, a.stateDir);
      assert.notEqual(await exitCode(b), 0);
      const idB = await idOf(b);
      assert.notEqual(idB, idA);
      assert.ok(
        (await b.log()).includes(
          `Cannot start: host name h1 is in use by machine ${idA} (alive since ${first.value.started}); set worker.host to another name`,
        ),
        await b.log(),
      );
      // The first machine keeps its lease, past a few TTLs.
      await new Promise((r) => setTimeout(r, 3 * 2000));
      const still = await aliveH1(c);
      assert.equal(still?.value.lease, first.value.lease);
      assert.equal(still?.modRevision, first.modRevision);
      assert.equal(
        (await c.store.get(keys.host("h1"), Host))!.value.machineId,
        idA,
      );

      // The first machine dies (replaced hardware): once its lease expired
      // the second may take the name, with a warning.
      await a.kill("SIGKILL");
      await a.killFencer();
      await waitFor("h1's lease to expire", async () => !(await aliveH1(c)));
      await b.start();
      const taken = await waitFor("h1 registered again", () => aliveH1(c));
      await fencerUp(b);
      assert.notEqual(taken.value.lease, first.value.lease);
      assert.equal(
        (await c.store.get(keys.host("h1"), Host))!.value.machineId,
        idB,
      );
      assert.match(
        await b.log(),
        new RegExp(
          `host name h1 was registered by machine ${idA}, whose lease has expired: this machine takes it over`,
        ),
      );
    }, { guest: false });
  },
});

Deno.test({
  name:
    "a worker never adopts the lease of a killed worker of another machine with the same host name",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withCluster(async (c) => {
      const a = await machine(c, "m1");
      const first = await waitFor("h1 registered", () => aliveH1(c));
      await fencerUp(a);
      const idA = await idOf(a);
      // Killed: its lease lives on for the TTL (10 s here), adoptable.
      await a.kill("SIGKILL");
      await a.killFencer();
      const b = await machine(c, "m2");
      assert.notEqual(await exitCode(b), 0);
      assert.match(
        await b.log(),
        new RegExp(`Cannot start: host name h1 is in use by machine ${idA}`),
      );
      assert.doesNotMatch(await b.log(), /adopted the lease/);
      const still = await aliveH1(c);
      assert.ok(still, "h1's lease expired during the test: make it longer");
      assert.equal(still.modRevision, first.modRevision);
    }, { guest: false, leaseTtlSeconds: 10 });
  },
});

Deno.test({
  name:
    "a second worker process for a host that already runs on this machine exits non-zero with the reason",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withCluster(async (c) => {
      const a = await c.addWorker({
        name: "h1",
        env: { UCLOUD_DRIVER: "sim" },
      });
      const first = await waitFor("h1 registered", () => aliveH1(c));
      await fencerUp(a);
      const twin = new WorkerProc(c, a.spec);
      await twin.start();
      try {
        assert.notEqual(await exitCode(twin), 0);
      } finally {
        await twin.kill("SIGKILL");
      }
      assert.match(
        await twin.log(),
        new RegExp(
          `Cannot start: worker process ${a.pid} already runs for host h1`,
        ),
      );
      assert.equal((await aliveH1(c))?.value.lease, first.value.lease);
    }, { guest: false });
  },
});
