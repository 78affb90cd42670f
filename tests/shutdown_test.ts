/**
 * Ordered host shutdown on worker processes (sim driver): `POST
 * /v1/hosts/{name}/shutdown`, or SIGTERM with `UCLOUD_SHUTDOWN_DRAIN=1`,
 * drains the host and then its worker exits 0 with its lease revoked:
 * every VM runs once on another host, nothing is fenced or started twice,
 * no key of the host's incarnation is left, and the failover that the
 * lease's end triggers finds nothing to do.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Alive, Host, Task, Vm } from "../core/schemas.ts";
import { call } from "./helpers/api.ts";
import {
  type Cluster,
  createVm,
  dump,
  simPids,
  waitFor,
  withCluster,
  type WorkerProc,
} from "./helpers/cluster.ts";

const SIM = { UCLOUD_DRIVER: "sim" };

async function vms(c: Cluster): Promise<Vm[]> {
  return (await c.store.list(keys.vms, Vm)).items.map((v) => v.value);
}

async function tasks(c: Cluster): Promise<Task[]> {
  return (await c.store.list(keys.tasks, Task)).items.map((t) => t.value);
}

/** The worker's exit code; fails when it does not exit within `ms`. */
async function exitCode(w: WorkerProc, ms: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`worker ${w.spec.name} still runs after ${ms} ms`)),
      ms,
    );
  });
  try {
    const status = await Promise.race([w.child!.status, timeout]);
    w.child = undefined;
    return status.code;
  } finally {
    clearTimeout(timer);
  }
}

/** The fencer of `w` runs (its pid file names a live process). */
async function fencerRuns(w: WorkerProc): Promise<boolean> {
  const pid = Number(
    await Deno.readTextFile(`${w.runDir}/fencer.pid`).catch(() => "0"),
  );
  if (pid <= 1) return false;
  const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  return cmd.includes("fencer.ts");
}

/** Two hosts, `n` VMs running on h1 (one of them stopped when `stopOne`). */
async function setup(c: Cluster, h1Env: Record<string, string>, n: number) {
  const app = createApp({ store: c.store, config: c.config });
  const w1 = await c.addWorker({ name: "h1", env: { ...SIM, ...h1Env } });
  await waitFor("h1 alive", () => c.store.get(keys.alive("h1"), Alive));
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await createVm(app, `s${i}`)).id);
  await waitFor(
    "VMs running on h1",
    async () =>
      (await vms(c)).every((v) =>
        v.status.phase === "running" && v.status.host === "h1"
      ),
    30_000,
  );
  await c.addWorker({ name: "h2", env: SIM });
  await waitFor("h2 alive", () => c.store.get(keys.alive("h2"), Alive));
  const lease = (await c.store.get(keys.alive("h1"), Alive))!.value.lease;
  return { app, w1, ids, lease };
}

/** After the shutdown: VMs on h2 once each, nothing of h1's lease left. */
async function assertShutDown(
  c: Cluster,
  w1: WorkerProc,
  ids: string[],
  lease: string,
  phases: Record<string, Vm["status"]["phase"]>,
) {
  const moved = await waitFor(
    "VMs settled on h2",
    async () => {
      const all = await vms(c);
      return all.every((v) =>
          v.status.host === "h2" &&
          v.status.phase === (phases[v.id] ?? "running")
        )
        ? all
        : null;
    },
    30_000,
    100,
  );
  assert.deepEqual(moved.map((v) => v.id).sort(), [...ids].sort());
  const onH2 = await simPids(c.workers.get("h2")!.stateDir);
  const all = await simPids(c.dir);
  for (const v of moved.filter((v) => v.status.phase === "running")) {
    assert.equal(onH2.get(v.id)?.length, 1, `vm ${v.id} runs on h2`);
    assert.equal(all.get(v.id)?.length, 1, `vm ${v.id} runs once`);
  }
  assert.equal((await simPids(w1.stateDir)).size, 0, "nothing left on h1");
  assert.equal(await c.store.get(keys.alive("h1"), Alive), null);
  assert.equal(await fencerRuns(w1), false, "h1's fencer is gone");
  const host = (await c.store.get(keys.host("h1"), Host))!.value;
  assert.equal(host.state, "draining");
  assert.equal(host.shutdown?.incarnation, lease);
  assert.ok(host.shutdown?.done, "the shutdown is recorded as done");

  // Each VM was placed once more, by its move: nothing started twice.
  const all_tasks = await tasks(c);
  for (const id of ids) {
    const creates = all_tasks.filter((t) =>
      t.kind === "vm.create" && t.payload.vm === id
    );
    assert.equal(creates.length, 2, `vm ${id}: ${JSON.stringify(creates)}`);
  }
  // The failover of the ended lease runs and finds nothing to do.
  const failed = await waitFor("host.failed done", async () => {
    const f = (await tasks(c)).filter((t) => t.kind === "host.failed");
    return f.length && f.every((t) => t.state === "succeeded") ? f : null;
  });
  assert.equal(failed.length, 1);
  assert.equal(failed[0].error, undefined);
  assert.deepEqual(failed[0].result, {
    host: "h1",
    incarnation: lease,
    evacuated: [],
    deleted: [],
    retargeted: [],
  });
  await waitFor(
    "every task finished",
    async () => (await tasks(c)).every((t) => t.state === "succeeded"),
  );
  const left = Object.keys(await dump(c.store)).filter((k) =>
    k.startsWith(keys.queueOf("h1")) || k.startsWith(keys.claims) ||
    (k.startsWith(keys.netMembers) && k.endsWith("/h1"))
  );
  assert.deepEqual(left, [], "no queue, claim or membership key left");
  const log = await w1.log();
  assert.doesNotMatch(log, /fenced/);
  assert.match(log, /host drained: the worker shuts down in order/);
}

Deno.test("POST /v1/hosts/{name}/shutdown drains the host, then its worker exits 0 with its lease revoked; a restarted worker stays, draining", async () => {
  await withCluster(async (c) => {
    const { app, w1, ids, lease } = await setup(c, {}, 3);
    const off = await call(app, "POST", `/v1/vms/${ids[2]}/stop`);
    assert.equal(off.status, 202, JSON.stringify(off.body));
    await waitFor(
      "one VM stopped",
      async () =>
        (await vms(c)).find((v) => v.id === ids[2])?.status.phase === "stopped",
    );

    const r = await call(app, "POST", "/v1/hosts/h1/shutdown");
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.task.kind, "host.drain");
    assert.equal(r.body.host.state, "draining");
    assert.equal(r.body.host.shutdown.by, "local");
    assert.equal(r.body.host.shutdown.done, undefined);
    const again = await call(app, "POST", "/v1/hosts/h1/shutdown");
    assert.equal(again.status, 200);
    assert.equal(again.body.task, null);

    assert.equal(await exitCode(w1, 60_000), 0);
    await assertShutDown(c, w1, ids, lease, { [ids[2]]: "stopped" });
    const list = await call(app, "GET", "/v1/hosts");
    const h1 = list.body.items.find((h: { name: string }) => h.name === "h1");
    assert.equal(h1.alive, false);
    assert.ok(h1.shutdown.done);
    const late = await call(app, "POST", "/v1/hosts/h1/shutdown");
    assert.equal(late.status, 409);
    assert.equal(
      late.body.error.message,
      "Cannot shut down host h1: no worker runs there",
    );

    // After the maintenance: a new worker registers, draining, and stays.
    await w1.start();
    await waitFor("h1 alive again", () => c.store.get(keys.alive("h1"), Alive));
    await waitFor("h1 registered without the shutdown", async () => {
      const h = await c.store.get(keys.host("h1"), Host);
      return h?.value.incarnation !== lease && !h?.value.shutdown;
    });
    await new Promise((r) => setTimeout(r, 2_000));
    assert.ok(w1.child, "the new worker runs");
    assert.ok(await c.store.get(keys.alive("h1"), Alive));
    const en = await call(app, "POST", "/v1/hosts/h1/enable");
    assert.equal(en.body.host.state, "active");
  }, { guest: false });
});

Deno.test("SIGTERM with UCLOUD_SHUTDOWN_DRAIN=1 drains the host and exits 0", async () => {
  await withCluster(async (c) => {
    const { w1, ids, lease } = await setup(
      c,
      { UCLOUD_SHUTDOWN_DRAIN: "1" },
      2,
    );
    w1.child!.kill("SIGTERM");
    assert.equal(await exitCode(w1, 60_000), 0);
    await assertShutDown(c, w1, ids, lease, {});
    const host = (await c.store.get(keys.host("h1"), Host))!.value;
    assert.equal(host.shutdown?.by, "SIGTERM on h1");
  }, { guest: false });
});
