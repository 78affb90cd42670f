/**
 * Transactions stay under etcd's 128 operations whatever the number of
 * VMs, hosts or networks (DESIGN.md rule 8), against a real etcd: a drain
 * of 200 VMs (the API app, two worker processes h1 and h2 with the sim
 * driver, one plain process per VM), two drains of one host at once,
 * rebalance rounds with 100 moves or 70 draining hosts, and a host's
 * membership in 250 networks. Each writes in batches; every VM still moves
 * exactly once.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { parseConfig } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { logger } from "../core/log.ts";
import {
  Alive,
  type Alloc,
  type Host,
  NetMember,
  Task,
  Vm,
} from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { SimDriver } from "../drivers/sim/driver.ts";
import type { TaskContext } from "../tasks/context.ts";
import { reserve } from "../scheduler/resources.ts";
import { DRAIN_BATCH, hostDrain } from "../tasks/host_drain.ts";
import {
  claim,
  complete,
  enqueue,
  guard,
  newTask,
  unfinished,
  type WorkerId,
} from "../tasks/queue.ts";
import { rebalanceOnce } from "../tasks/rebalance_round.ts";
import { type Member, writeMembership } from "../workers/net.ts";
import { type Cluster, startCluster, waitFor } from "./helpers/cluster.ts";

const VMS = 200;

type App = ReturnType<typeof createApp>;

async function post(app: App, path: string, body?: unknown) {
  const res = await app.request(path, {
    method: "POST",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  // deno-lint-ignore no-explicit-any
  return { status: res.status, body: await res.json() as any };
}

/** Pids of sim VM processes whose pidfile lies under `dir`, by VM id. */
async function simProcs(dir: string): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`)
      .catch(() => "");
    const m = cmd.match(/^ucloud-sim (\S+)\/vms\/([^/]+)\/sim\.pid/);
    if (!m || !m[1].startsWith(dir)) continue;
    out.set(m[2], [...out.get(m[2]) ?? [], Number(e.name)]);
  }
  return out;
}

/** SIGKILLs the cluster's sim processes (they outlive workers by design). */
async function killSims(c: Cluster): Promise<void> {
  for (const pids of (await simProcs(c.dir)).values()) {
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
}

async function onHost(c: Cluster, ids: string[], host: string) {
  const vms = (await c.store.list(keys.vms, Vm)).items.map((v) => v.value);
  const placed = vms.filter((v) =>
    ids.includes(v.id) && v.status.phase === "running" &&
    v.status.host === host
  );
  return placed.length === ids.length;
}

Deno.test({
  name: `drain moves all ${VMS} VMs off a host, each with exactly one vm.move`,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const c = await startCluster({ guest: false });
    try {
      c.env.UCLOUD_DRIVER = "sim";
      await Deno.writeTextFile(
        c.env.UCLOUD_CONFIG,
        JSON.stringify({ worker: { concurrency: 16 } }),
      );
      const size = { cpus: VMS, memoryMiB: VMS * 128 };
      const app = createApp({ store: c.store, config: c.config });
      await c.addWorker({ name: "h1", ...size });
      await waitFor(
        "h1 registered",
        () => c.store.get(keys.alive("h1"), Alive),
      );
      const ids: string[] = [];
      for (let i = 0; i < VMS; i++) {
        const r = await post(app, "/v1/vms", {
          name: `s${i}`,
          cpus: 1,
          memory: 128,
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        ids.push(r.body.vm.id);
      }
      await waitFor(
        "VMs running on h1",
        () => onHost(c, ids, "h1"),
        120_000,
        250,
      );
      await c.addWorker({ name: "h2", ...size });
      await waitFor(
        "h2 registered",
        () => c.store.get(keys.alive("h2"), Alive),
      );

      const t0 = Date.now();
      const drain = await post(app, "/v1/hosts/h1/drain");
      assert.equal(drain.status, 202, JSON.stringify(drain.body));
      await waitFor(
        "VMs running on h2",
        () => onHost(c, ids, "h2"),
        120_000,
        250,
      ).catch(async (err) => {
        const drains = (await c.store.list(keys.tasks, Task)).items
          .filter((t) => t.value.kind === "host.drain")
          .map((t) => `${t.value.state}: ${t.value.error}`);
        throw new Error(`${err.message}; drains: ${drains.join("; ")}`);
      });
      console.log(`drained ${VMS} VMs in ${Date.now() - t0} ms`);

      const tasks = (await c.store.list(keys.tasks, Task)).items
        .map((t) => t.value);
      const moves = tasks.filter((t) => t.kind === "vm.move");
      assert.equal(moves.length, VMS, "one vm.move per VM");
      assert.deepEqual(
        moves.map((t) => t.payload.vm).sort(),
        [...ids].sort(),
      );
      assert.ok(moves.every((t) => t.state === "succeeded"));
      const drains = tasks.filter((t) => t.kind === "host.drain");
      assert.equal(
        drains.length,
        Math.ceil(VMS / DRAIN_BATCH),
        JSON.stringify(drains.map((t) => [t.payload, t.result])),
      );
      assert.ok(drains.every((t) => t.state === "succeeded"));
      assert.ok(drains.every((t) => t.attempts === 1), "no drain failed");
      // Each VM runs once, on h2.
      const h1 = await simProcs(c.workers.get("h1")!.stateDir);
      const h2 = await simProcs(c.workers.get("h2")!.stateDir);
      assert.equal(h1.size, 0, `left on h1: ${[...h1.keys()]}`);
      assert.deepEqual([...h2.keys()].sort(), [...ids].sort());
      assert.ok([...h2.values()].every((p) => p.length === 1));
    } catch (err) {
      await c.printLogs();
      throw err;
    } finally {
      await c.stop();
      await killSims(c);
    }
  },
});

/** Runs `f` with a store on a throwaway etcd. */
async function withEtcd(f: (store: Store) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "uc-drain-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({
    endpoints: [etcd.endpoint],
    prefix: "/d",
    timeoutMs: 2000,
  });
  try {
    await f(store);
  } finally {
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Writes host `name` (256 CPUs) with `n` running VMs of 1 CPU reserved on
 * it, alive under `lease` when given; returns the VM ids.
 */
async function seedHost(
  store: Store,
  name: string,
  state: Host["state"],
  n: number,
  lease?: string,
): Promise<string[]> {
  const at = new Date().toISOString();
  const host: Host = {
    name,
    capacity: { cpus: 256, memoryMiB: 256 * 128 },
    addresses: [],
    os: "linux",
    drivers: ["sim"],
    state,
    registeredAt: at,
  };
  const ids = Array.from({ length: n }, (_, i) => `${name}-vm-${i}`);
  let alloc: Alloc | null = null;
  // Two writes per VM: 50 VMs per transaction stay under 128 operations.
  for (let i = 0; i < n; i += 50) {
    const txn = store.txn();
    for (const id of ids.slice(i, i + 50)) {
      const vm: Vm = {
        id,
        owner: "alice",
        spec: { name: id, cpus: 1, memory: 128, image: "tiny" },
        nics: [],
        desired: "running",
        status: { phase: "running", host: name, updatedAt: at },
        createdAt: at,
      };
      const size = { cpus: 1, memoryMiB: 128 };
      txn.put(keys.vm(id), vm).put(keys.allocVm(name, id), size);
      alloc = reserve(alloc, size);
    }
    assert.ok((await txn.commit()).ok);
  }
  const txn = store.txn().put(keys.host(name), host)
    .put(keys.alloc(name), alloc);
  if (lease) {
    txn.put(
      keys.alive(name),
      {
        incarnation: lease,
        started: at,
        pid: Deno.pid,
        lease,
      } satisfies Alive,
      { lease },
    );
  }
  assert.ok((await txn.commit()).ok);
  return ids;
}

/** A task context for running a handler by hand against a real store. */
function contextOf(store: Store, task: Task, worker: WorkerId): TaskContext {
  return {
    store,
    config: parseConfig({}, () => undefined),
    task,
    worker,
    host: worker.name,
    driver: new SimDriver({ stateDir: "/nonexistent" }),
    images: () => Promise.reject(new Error("no images here")),
    signal: new AbortController().signal,
    log: logger({ test: "drain" }),
    guard: () => guard(store, task.id, worker),
    progress: async () => {},
  };
}

Deno.test("two host.drain tasks of one host running at once enqueue each VM's vm.move once", async () => {
  await withEtcd(async (store) => {
    const n = 2 * DRAIN_BATCH + 20;
    const ids = await seedHost(store, "h1", "draining", n);
    const drain = () =>
      newTask({ kind: "host.drain", target: "any", payload: { host: "h1" } });
    const a = drain(), b = drain();
    assert.ok((await enqueue(enqueue(store.txn(), a), b).commit()).ok);
    const w1 = { name: "w1", lease: await store.grantLease(30) };
    const w2 = { name: "w2", lease: await store.grantLease(30) };
    const ta = (await claim(store, a.id, w1))!.value;
    const tb = (await claim(store, b.id, w2))!.value;
    // Both read the host before either commits; the first commit wins.
    const oa = await hostDrain(contextOf(store, ta, w1));
    const ob = await hostDrain(contextOf(store, tb, w2));
    assert.ok(await complete(store, ta, w1, oa.result, oa.txn));
    assert.equal(await complete(store, tb, w2, ob.result, ob.txn), false);
    // What the worker does then: run the handler again and complete.
    const again = await hostDrain(contextOf(store, tb, w2));
    assert.ok(await complete(store, tb, w2, again.result, again.txn));
    // Both drains left a follow-up; run every drain until none is left.
    for (let round = 0; round < 10; round++) {
      const left = (await unfinished(store, "any"))
        .filter((t) => t.kind === "host.drain");
      if (!left.length) break;
      for (const t of left) {
        const c = (await claim(store, t.id, w1))!.value;
        const o = await hostDrain(contextOf(store, c, w1));
        assert.ok(await complete(store, c, w1, o.result, o.txn));
      }
    }
    assert.deepEqual(
      (await unfinished(store, "any")).map((t) => t.kind),
      [],
    );
    const moves = (await unfinished(store, "h1"))
      .filter((t) => t.kind === "vm.move");
    assert.equal(moves.length, n, "one vm.move per VM");
    assert.deepEqual(
      moves.map((t) => String(t.payload.vm)).sort(),
      [...ids].sort(),
    );
  });
});

Deno.test("a rebalance round enqueues 100 moves in transactions under etcd's limit", async () => {
  await withEtcd(async (store) => {
    const lease = await store.grantLease(30);
    const ids = await seedHost(store, "h1", "active", 200, lease);
    await seedHost(store, "h2", "active", 0, lease);
    const config = parseConfig({
      scheduler: {
        rebalanceMaxMoves: 100,
        rebalanceThreshold: 0,
        // The seeded VMs run: this round may move them (the admin's choice).
        rebalanceRunning: true,
      },
    }, () => undefined);
    const r = await rebalanceOnce(store, config, { by: "test" });
    assert.equal(r.ran, true);
    assert.equal(r.moves.length, 100, r.reason);
    const moves = (await unfinished(store, "h1"))
      .filter((t) => t.kind === "vm.move");
    assert.deepEqual(
      moves.map((t) => t.id).sort(),
      r.moves.map((m) => m.task).sort(),
    );
    const vms = new Set(moves.map((t) => String(t.payload.vm)));
    assert.equal(vms.size, 100);
    assert.ok([...vms].every((id) => ids.includes(id)));
  });
});

Deno.test("a rebalance round enqueues a host.drain for each of 70 draining hosts", async () => {
  await withEtcd(async (store) => {
    const lease = await store.grantLease(30);
    const hosts = Array.from({ length: 70 }, (_, i) => `d${i}`);
    for (const h of hosts) await seedHost(store, h, "draining", 1, lease);
    const config = parseConfig({}, () => undefined);
    const r = await rebalanceOnce(store, config, { by: "test" });
    assert.equal(r.ran, true);
    assert.deepEqual(r.drains.map((d) => d.host).sort(), [...hosts].sort());
    const drains = (await unfinished(store, "any"))
      .filter((t) => t.kind === "host.drain");
    assert.deepEqual(
      drains.map((t) => String(t.payload.host)).sort(),
      [...hosts].sort(),
    );
    // Every draining host has its drain now: the next round adds none.
    const again = await rebalanceOnce(store, config, { by: "test" });
    assert.deepEqual(again.drains, []);
  });
});

Deno.test("writeMembership() records and removes a host's membership in 250 networks", async () => {
  await withEtcd(async (store) => {
    const lease = await store.grantLease(30);
    const nets = Array.from({ length: 250 }, (_, i) => `net-${i}`);
    const listed = async (): Promise<Member[]> =>
      (await store.list(keys.netMembers, NetMember)).items.map((kv) => {
        const [network, host] = kv.key.slice(keys.netMembers.length)
          .split("/");
        return { network, host, address: kv.value.address, lease: kv.lease };
      });
    const o = { host: "h1", lease, address: "fd00::1", members: [] };
    assert.equal(
      await writeMembership(store, { ...o, wanted: new Set(nets) }),
      250,
    );
    const members = await listed();
    assert.deepEqual(members.map((m) => m.network).sort(), [...nets].sort());
    assert.ok(
      members.every((m) => m.lease === lease && m.address === "fd00::1"),
    );
    // Written once: nothing to do the second time.
    assert.equal(
      await writeMembership(store, { ...o, wanted: new Set(nets), members }),
      0,
    );
    assert.equal(
      await writeMembership(store, { ...o, wanted: new Set(), members }),
      250,
    );
    assert.deepEqual(await listed(), []);
  });
});
