/**
 * No surprise moves, end to end on worker processes (sim driver): a
 * rebalance round moves stopped VMs and VMs whose spec says `movable`, never
 * another running VM unless `scheduler.rebalanceRunning`; the dry run
 * (`GET /v1/maintenance/rebalance`) answers the plan and writes nothing; a
 * round that does nothing logs at debug level only.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { type Config, ConfigSchema } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import type { Fields, Logger } from "../core/log.ts";
import { Alive, Task, Vm } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { rebalanceOnce } from "../tasks/rebalance_round.ts";
import { call } from "./helpers/api.ts";
import { reserveOn } from "./helpers/task_ctx.ts";
import {
  type Cluster,
  dump,
  simPids,
  waitFor,
  withCluster,
} from "./helpers/cluster.ts";

const SIM = { UCLOUD_DRIVER: "sim" };

async function vms(c: Cluster): Promise<Vm[]> {
  return (await c.store.list(keys.vms, Vm)).items.map((v) => v.value);
}

/** The task and queue keys: what a dry run must leave alone. */
async function taskKeys(c: Cluster): Promise<string[]> {
  return Object.keys(await dump(c.store)).filter((k) =>
    k.startsWith(keys.tasks) || k.startsWith(keys.queues)
  ).sort();
}

/** Waits until every VM in `want` is on its host in its phase. */
async function waitPlaced(
  c: Cluster,
  want: Record<string, [string, Vm["status"]["phase"]]>,
): Promise<Vm[]> {
  return await waitFor(
    `VMs at ${JSON.stringify(want)}`,
    async () => {
      const all = await vms(c);
      const ok = Object.entries(want).every(([id, [host, phase]]) => {
        const v = all.find((x) => x.id === id);
        return v?.status.host === host && v.status.phase === phase;
      });
      return ok ? all : null;
    },
    60_000,
    100,
  );
}

/** Every running VM has exactly one sim process, on its host. */
async function assertRunOnce(c: Cluster) {
  for (const v of (await vms(c)).filter((v) => v.status.phase === "running")) {
    const on = await simPids(c.workers.get(v.status.host!)!.stateDir);
    const all = await simPids(c.dir);
    assert.equal(on.get(v.id)?.length, 1, `vm ${v.id} on ${v.status.host}`);
    assert.equal(all.get(v.id)?.length, 1, `vm ${v.id} runs once`);
  }
}

Deno.test("a rebalance round moves stopped and movable VMs only; rebalanceRunning moves running ones; the dry run writes nothing", async () => {
  await withCluster(async (c) => {
    const scheduler = {
      ...ConfigSchema.shape.scheduler.parse(undefined),
      rebalanceMaxMoves: 3,
    };
    const config: Config = { ...c.config, scheduler };
    const app = createApp({ store: c.store, config });
    await c.addWorker({ name: "h1", cpus: 8, memoryMiB: 2048, env: SIM });
    await waitFor("h1 alive", () => c.store.get(keys.alive("h1"), Alive));
    const made: Record<string, string> = {};
    const names = ["f0", "f1", "f2", "f3", "f4", "f5", "mov", "off"];
    for (const name of names) {
      const r = await call(app, "POST", "/v1/vms", {
        json: {
          name,
          cpus: 1,
          memory: 128,
          ...(name === "mov" ? { movable: true } : {}),
        },
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      made[name] = r.body.vm.id;
    }
    const at = (host: string, phase: Vm["status"]["phase"]) =>
      Object.fromEntries(
        names.map((n) => [made[n], [host, phase]]),
      ) as Record<string, [string, Vm["status"]["phase"]]>;
    await waitPlaced(c, at("h1", "running"));
    const stop = await call(app, "POST", `/v1/vms/${made.off}/stop`);
    assert.equal(stop.status, 202, JSON.stringify(stop.body));
    await waitPlaced(c, {
      ...at("h1", "running"),
      [made.off]: ["h1", "stopped"],
    });
    const shown = await call(app, "GET", `/v1/vms/${made.mov}`);
    assert.equal(shown.body.spec.movable, true);

    await c.addWorker({ name: "h2", cpus: 8, memoryMiB: 2048, env: SIM });
    await waitFor("h2 alive", () => c.store.get(keys.alive("h2"), Alive));

    // The dry run: the stopped VM, then the movable one; nothing written.
    const before = await taskKeys(c);
    const plan = await call(app, "GET", "/v1/maintenance/rebalance");
    assert.equal(plan.status, 200, JSON.stringify(plan.body));
    assert.deepEqual(
      plan.body.moves.map((m: Record<string, string>) => [
        m.vm,
        m.from,
        m.to,
        m.phase,
      ]),
      [[made.off, "h1", "h2", "stopped"], [made.mov, "h1", "h2", "running"]],
    );
    assert.match(plan.body.moves[0].why, /^h1 75%, h2 0% loaded/);
    assert.match(
      plan.body.reason,
      /\(6 running VM\(s\) stay: scheduler\.rebalanceRunning is off/,
    );
    assert.deepEqual(plan.body.drains, []);
    assert.deepEqual(await taskKeys(c), before, "the dry run enqueued nothing");

    // The round does what the plan said, and no more.
    const r1 = await call(app, "POST", "/v1/maintenance/rebalance");
    assert.equal(r1.body.ran, true, JSON.stringify(r1.body));
    assert.deepEqual(
      r1.body.moves.map((m: { vm: string }) => m.vm),
      [made.off, made.mov],
    );
    assert.equal(r1.body.reason, plan.body.reason);
    await waitPlaced(c, {
      ...at("h1", "running"),
      [made.off]: ["h2", "stopped"],
      [made.mov]: ["h2", "running"],
    });
    await assertRunOnce(c);
    // Still imbalanced (h1 6 VMs, h2 2), but only running, fixed VMs left.
    const r2 = await call(app, "POST", "/v1/maintenance/rebalance");
    assert.deepEqual(r2.body.moves, []);
    assert.match(
      r2.body.reason,
      /^no VM on h1 fits on h2 and narrows the gap \(6 running VM\(s\) stay/,
    );

    // The admin's option: a running VM moves (gracefully stopped, started
    // on h2), once.
    const running = createApp({
      store: c.store,
      config: {
        ...config,
        scheduler: { ...scheduler, rebalanceRunning: true },
      },
    });
    const r3 = await call(running, "POST", "/v1/maintenance/rebalance");
    assert.equal(r3.body.moves.length, 1, JSON.stringify(r3.body));
    const [m] = r3.body.moves;
    assert.equal(m.phase, "running");
    assert.equal(m.from, "h1");
    await waitPlaced(c, { [m.vm]: ["h2", "running"] });
    await assertRunOnce(c);
    const moves = (await c.store.list(keys.tasks, Task)).items
      .map((t) => t.value).filter((t) => t.kind === "vm.move");
    assert.deepEqual(
      moves.map((t) => t.payload.vm).sort(),
      [made.off, made.mov, m.vm].sort(),
    );
    assert.ok(moves.every((t) => t.state === "succeeded"));
  }, { guest: false });
});

/** A logger that keeps its lines. */
function capture(lines: { level: string; msg: string; fields?: Fields }[]) {
  const log: Logger = {
    debug: (msg, fields) => lines.push({ level: "debug", msg, fields }),
    info: (msg, fields) => lines.push({ level: "info", msg, fields }),
    warn: (msg, fields) => lines.push({ level: "warn", msg, fields }),
    error: (msg, fields) => lines.push({ level: "error", msg, fields }),
    child: () => log,
  };
  return log;
}

Deno.test("rebalanceOnce() logs a round that moves nothing at debug level, one that moves at info", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-rebalance-log-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/log" });
  try {
    const settings = {
      tasks: {
        maxAttempts: 3,
        backoffBaseMs: 1,
        backoffMaxMs: 1,
        taskTimeoutMs: 1000,
      },
      scheduler: ConfigSchema.shape.scheduler.parse(undefined),
    };
    const lines: { level: string; msg: string; fields?: Fields }[] = [];
    const log = capture(lines);
    const idle = await rebalanceOnce(store, settings, { by: "h1", log });
    assert.equal(idle.ran, true);
    assert.deepEqual(lines.map((l) => [l.level, l.msg]), [
      ["debug", "rebalance round"],
    ]);
    assert.equal(lines[0].fields?.reason, idle.reason);

    // A draining live host with a VM: the round resumes its drain.
    const lease = await store.grantLease(30);
    const host = {
      name: "h1",
      capacity: { cpus: 4, memoryMiB: 2048 },
      addresses: [],
      os: "linux",
      drivers: ["sim"],
      state: "draining",
      registeredAt: "2026-01-01T00:00:00Z",
    };
    const vm = {
      id: "vm-a",
      owner: "alice",
      spec: { name: "a", cpus: 1, memory: 128, image: "tiny" },
      nics: [],
      desired: "running",
      status: {
        phase: "running",
        host: "h1",
        updatedAt: "2026-01-01T00:00:00Z",
      },
      createdAt: "2026-01-01T00:00:00Z",
    };
    await store.txn().put(keys.host("h1"), host)
      .put(keys.alive("h1"), {
        incarnation: lease,
        started: "x",
        pid: 1,
        lease,
      }, { lease })
      .put(keys.vm("vm-a"), vm).commit();
    // Reserved on its host, as placement writes it.
    await reserveOn(store, "h1", "vm-a");
    lines.length = 0;
    const busy = await rebalanceOnce(store, settings, { by: "h1", log });
    assert.equal(busy.drains.length, 1);
    assert.deepEqual(lines.map((l) => [l.level, l.msg]), [
      ["info", "rebalance round"],
    ]);
    await store.revokeLease(lease);
  } finally {
    store.close();
    await etcd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
