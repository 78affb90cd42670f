/**
 * Draining, enabling and rebalancing hosts end to end: the API app, two
 * worker processes (h1, h2), etcd and qemu under TCG. Every VM must run
 * exactly once wherever it ends up: one qemu process per VM id, on the
 * host its document names.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { type Config, ConfigSchema } from "../core/config.ts";
import { keys } from "../core/keys.ts";
import { Alive, Alloc, Host, Task, Vm } from "../core/schemas.ts";
import { reservedOn } from "../scheduler/ledger.ts";
import type { drainReport } from "../tasks/drain_report.ts";
import {
  type Cluster,
  qemuPids,
  waitFor,
  withCluster,
} from "./helpers/cluster.ts";

type App = ReturnType<typeof createApp>;

async function api(app: App, method: string, path: string, body?: unknown) {
  const res = await app.request(path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  // deno-lint-ignore no-explicit-any
  return { status: res.status, body: await res.json() as any };
}

async function vmDoc(c: Cluster, id: string): Promise<Vm | null> {
  return (await c.store.get(keys.vm(id), Vm))?.value ?? null;
}

async function tasksOf(c: Cluster, kind: string): Promise<Task[]> {
  return (await c.store.list(keys.tasks, Task)).items.map((t) => t.value)
    .filter((t) => t.kind === kind);
}

async function waitAlive(c: Cluster, host: string) {
  await waitFor(
    `${host} registered`,
    async () => await c.store.get(keys.alive(host), Alive),
  );
}

/** Waits until every VM runs on `host`; returns the documents. */
async function waitRunningOn(
  c: Cluster,
  ids: string[],
  host: string,
  ms = 60_000,
): Promise<Vm[]> {
  return await waitFor(
    `${ids.length} VM(s) running on ${host}`,
    async () => {
      const vms = await Promise.all(ids.map((id) => vmDoc(c, id)));
      return vms.every((v) =>
          v?.status.phase === "running" && v.status.host === host
        )
        ? vms as Vm[]
        : null;
    },
    ms,
    100,
  );
}

/**
 * The VM runs exactly once, on `host`: one qemu process for its id in the
 * whole machine, the one its handle names, under that host's state dir.
 */
async function assertRunsOnceOn(c: Cluster, vm: Vm, host: string) {
  const pids = await qemuPids(`/vms/${vm.id}/`);
  const handle = vm.status.handle as { pid: number };
  assert.deepEqual(pids, [handle.pid], `vm ${vm.id}: qemu pids ${pids}`);
  const cmd = await Deno.readTextFile(`/proc/${handle.pid}/cmdline`);
  assert.ok(
    cmd.includes(`${c.workers.get(host)!.stateDir}/vms/${vm.id}/`),
    `vm ${vm.id} runs outside ${host}: ${cmd}`,
  );
}

async function createVms(app: App, n: number, prefix: string) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await api(app, "POST", "/v1/vms", {
      name: `${prefix}${i}`,
      cpus: 1,
      memory: 128,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    ids.push(r.body.vm.id);
  }
  return ids;
}

Deno.test("drain moves every VM to another host exactly once; enable lets VMs land again", async () => {
  await withCluster(async (c) => {
    const app = createApp({ store: c.store, config: c.config });
    await c.addWorker({ name: "h1", cpus: 4, memoryMiB: 2048 });
    await waitAlive(c, "h1");
    const ids = await createVms(app, 3, "d");
    const first = await waitRunningOn(c, ids, "h1");
    const oldPids = first.map((v) => (v.status.handle as { pid: number }).pid);

    // h2 has room for exactly the three VMs.
    await c.addWorker({ name: "h2", cpus: 3, memoryMiB: 2048 });
    await waitAlive(c, "h2");
    const drain = await api(app, "POST", "/v1/hosts/h1/drain");
    assert.equal(drain.status, 202, JSON.stringify(drain.body));
    assert.equal(drain.body.host.state, "draining");
    assert.deepEqual(drain.body.host.vms, [...ids].sort());
    assert.equal(drain.body.task.kind, "host.drain");
    const again = await api(app, "POST", "/v1/hosts/h1/drain");
    assert.equal(again.status, 200);
    assert.equal(again.body.task, null);

    const moved = await waitRunningOn(c, ids, "h2");
    for (const vm of moved) await assertRunsOnceOn(c, vm, "h2");
    for (const pid of oldPids) {
      assert.deepEqual(
        (await qemuPids(`/vms/`)).filter((p) => p === pid),
        [],
        `old qemu ${pid} still runs`,
      );
    }
    // h1's files of the moved VMs are gone; its reservations are released.
    for (const id of ids) {
      await assert.rejects(
        Deno.stat(`${c.workers.get("h1")!.stateDir}/vms/${id}`),
        Deno.errors.NotFound,
      );
    }
    const a1 = await c.store.get(keys.alloc("h1"), Alloc);
    assert.equal(a1?.value.count ?? 0, 0);
    assert.deepEqual(await reservedOn(c.store, "h1"), []);
    const a2 = await c.store.get(keys.alloc("h2"), Alloc);
    assert.equal(a2?.value.count, ids.length);
    assert.deepEqual(await reservedOn(c.store, "h2"), [...ids].sort());

    const hosts = await api(app, "GET", "/v1/hosts");
    const byName = new Map(
      // deno-lint-ignore no-explicit-any
      hosts.body.items.map((h: any) => [h.name, h]),
    );
    // deno-lint-ignore no-explicit-any
    const h1 = byName.get("h1") as any, h2 = byName.get("h2") as any;
    assert.equal(h1.state, "draining");
    assert.deepEqual(h1.vms, []);
    assert.deepEqual(h2.vms, [...ids].sort());
    for (const h of [h1, h2]) {
      const ago = Date.now() - Date.parse(h.lastHeartbeat);
      assert.ok(ago >= -1000 && ago < 4000, `${h.name} heartbeat ${ago} ms`);
    }

    // Every step is a task document that succeeded, with the reason.
    const drains = await tasksOf(c, "host.drain");
    assert.deepEqual(drains.map((t) => t.state), ["succeeded"]);
    const drainResult = drains[0].result as { moves: { vm: string }[] };
    assert.deepEqual(
      drainResult.moves.map((m) => m.vm).sort(),
      [...ids].sort(),
    );
    const moves = await tasksOf(c, "vm.move");
    assert.equal(moves.length, 3, JSON.stringify(moves));
    for (const t of moves) {
      assert.equal(t.state, "succeeded", JSON.stringify(t));
      assert.equal(t.target, "h1");
      assert.equal(t.payload.reason, "drained by local");
    }
    assert.deepEqual(moves.map((t) => t.payload.vm).sort(), [...ids].sort());
    const creates = (await tasksOf(c, "vm.create")).filter((t) =>
      t.payload.avoid === "h1"
    );
    assert.equal(creates.length, 3);
    assert.ok(creates.every((t) => t.state === "succeeded"));

    // Each guest was shut down by the power button; the drain's report has
    // every VM's stop and downtime (stop begin to running on h2).
    const shown = await api(
      app,
      "GET",
      `/v1/tasks/${drain.body.task.id}/drain`,
    );
    assert.equal(shown.status, 200, JSON.stringify(shown.body));
    const report = shown.body as Awaited<ReturnType<typeof drainReport>> & {
      done: boolean;
    };
    assert.equal(report.done, true);
    assert.equal(report.host, "h1");
    assert.deepEqual(report.vms.map((v) => v.vm).sort(), [...ids].sort());
    for (const v of report.vms) {
      assert.equal(v.stop, "shutdown", JSON.stringify(v));
      assert.equal(v.to, "h2", JSON.stringify(v));
      assert.equal(v.done, true, JSON.stringify(v));
      assert.ok(v.downtimeMs! >= v.stopMs!, JSON.stringify(v));
    }
    console.log(
      "drain downtimes (stop ms / down ms):",
      report.vms.map((v) => `${v.vm} ${v.stopMs}/${v.downtimeMs}`).join(", "),
    );
    assert.ok(
      creates.every((t) =>
        t.payload.reason === "moving off h1: drained by local"
      ),
    );

    // h2 is full and h1 drains: a new VM waits, it does not land on h1.
    const [late] = await createVms(app, 1, "late");
    const pending = await waitFor("the new VM's reason", async () => {
      const v = await vmDoc(c, late);
      return v?.status.reason ? v : null;
    });
    await new Promise((r) => setTimeout(r, 2500));
    const still = (await vmDoc(c, late))!;
    assert.equal(still.status.phase, "pending");
    assert.equal(still.status.host, undefined);
    assert.match(
      pending.status.reason!,
      /^no live host has 1 free CPU\(s\).*1 down or draining/,
    );

    const en = await api(app, "POST", "/v1/hosts/h1/enable");
    assert.equal(en.status, 200);
    assert.equal(en.body.host.state, "active");
    assert.equal(en.body.task.kind, "host.enable");
    const [landed] = await waitRunningOn(c, [late], "h1", 30_000);
    await assertRunsOnceOn(c, landed, "h1");
    assert.equal(
      (await c.store.get(keys.host("h1"), Host))?.value.state,
      "active",
    );
    // The moved VMs stayed where they went.
    for (const vm of await waitRunningOn(c, ids, "h2")) {
      await assertRunsOnceOn(c, vm, "h2");
    }
  });
});

Deno.test("rebalance moves VMs to an empty host, at most rebalanceMaxMoves per round, never twice", async () => {
  await withCluster(async (c) => {
    const config: Config = {
      ...c.config,
      scheduler: {
        ...ConfigSchema.shape.scheduler.parse(undefined),
        rebalanceMaxMoves: 1,
        rebalanceRunning: true,
      },
    };
    const app = createApp({ store: c.store, config });
    await c.addWorker({ name: "h1", cpus: 4, memoryMiB: 2048 });
    await waitAlive(c, "h1");
    const ids = await createVms(app, 4, "r");
    await waitRunningOn(c, ids, "h1");
    await c.addWorker({ name: "h2", cpus: 4, memoryMiB: 2048 });
    await waitAlive(c, "h2");

    /** Runs rounds until one moves `n` VMs; returns them once running. */
    const round = async () => {
      const rs = await Promise.all([
        api(app, "POST", "/v1/maintenance/rebalance"),
        api(app, "POST", "/v1/maintenance/rebalance"),
      ]);
      for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.body));
      // deno-lint-ignore no-explicit-any
      return rs.flatMap((r) => r.body.moves as any[]);
    };
    const onHost = async (host: string) =>
      (await Promise.all(ids.map((id) => vmDoc(c, id)))).filter((v) =>
        v?.status.host === host
      ).map((v) => v!.id);

    // Round 1 (two calls at once): one move, not two.
    const m1 = await round();
    assert.equal(m1.length, 1, JSON.stringify(m1));
    assert.equal(m1[0].from, "h1");
    const [v1] = await waitRunningOn(c, [m1[0].vm], "h2");
    await assertRunsOnceOn(c, v1, "h2");

    // Round 2: still 3 to 1, above the threshold: one more.
    const m2 = await round();
    assert.equal(m2.length, 1, JSON.stringify(m2));
    assert.notEqual(m2[0].vm, m1[0].vm);
    const [v2] = await waitRunningOn(c, [m2[0].vm], "h2");
    await assertRunsOnceOn(c, v2, "h2");

    // Round 3: 2 and 2 is balanced.
    const m3 = await round();
    assert.deepEqual(m3, []);
    assert.deepEqual((await onHost("h2")).sort(), [m1[0].vm, m2[0].vm].sort());
    const stay = ids.filter((id) => id !== m1[0].vm && id !== m2[0].vm);
    for (const vm of await waitRunningOn(c, stay, "h1")) {
      await assertRunsOnceOn(c, vm, "h1");
    }
    const moves = await tasksOf(c, "vm.move");
    assert.deepEqual(
      moves.map((t) => [t.payload.vm, t.state]).sort(),
      [[m1[0].vm, "succeeded"], [m2[0].vm, "succeeded"]].sort(),
    );
    for (const t of moves) {
      assert.match(String(t.payload.reason), /^rebalancing: h1 \d+%, h2/);
    }
  });
});
