/**
 * The scheduler against a real etcd: inline placement at create, the
 * placement cache, no overcommit under concurrency (several OS processes,
 * each with its own store, cache and API app, racing for small hosts),
 * two `vm.create` handlers racing for the last slot, and a pending VM
 * placed soon after capacity appears (with a real worker process running
 * the `vm.create` handler).
 *
 * Hosts are registered by hand (`host/` + `alive/` bound to a lease), so
 * no worker is needed where only placement matters.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { createApp } from "../api/app.ts";
import { type Config, parseConfig } from "../core/config.ts";
import { type EtcdServer, startEtcd } from "../core/etcd_server.ts";
import { idOf, keys } from "../core/keys.ts";
import { logger } from "../core/log.ts";
import { PlacementCache } from "../scheduler/cache.ts";
import { Alive, Alloc, Host, Task, Vm } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import type { TaskContext, VmDriver } from "../tasks/context.ts";
import {
  claim,
  complete,
  enqueue,
  guard,
  newTask,
  type WorkerId,
} from "../tasks/queue.ts";
import { MAX_WAIT_MS, vmCreate } from "../tasks/vm_create.ts";
import { usage } from "../scheduler/mod.ts";
import { ROOT, startCluster, waitFor } from "./helpers/cluster.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };
type App = ReturnType<typeof createApp>;

async function post(app: App, body: unknown, headers = {}) {
  const res = await app.request("/v1/vms", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  // deno-lint-ignore no-explicit-any
  return { status: res.status, body: await res.json() as any };
}

async function grant(store: Store, ttl = 60): Promise<string> {
  const res = await store.client.leaseClient.leaseGrant({ TTL: ttl });
  return String(res.ID);
}

async function revoke(store: Store, lease: string): Promise<void> {
  await store.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => {});
}

const hostDoc = (
  name: string,
  cpus: number,
  memoryMiB: number,
  diskMiB?: number,
): Host => ({
  name,
  capacity: { cpus, memoryMiB, ...(diskMiB ? { diskMiB } : {}) },
  addresses: [],
  os: "linux",
  drivers: ["sim"],
  state: "active",
  registeredAt: new Date().toISOString(),
});

/** Registers hosts as a worker would: host doc plus alive bound to `lease`. */
async function register(
  store: Store,
  lease: string,
  hosts: { name: string; cpus: number; memoryMiB: number; diskMiB?: number }[],
): Promise<void> {
  for (const h of hosts) {
    const alive: Alive = {
      incarnation: lease,
      started: new Date().toISOString(),
      pid: Deno.pid,
      lease,
    };
    const r = await store.txn()
      .put(
        keys.host(h.name),
        hostDoc(h.name, h.cpus, h.memoryMiB, h.diskMiB),
      )
      .put(keys.alive(h.name), alive, { lease })
      .commit();
    assert.ok(r.ok);
  }
}

/**
 * Checks the invariants of placement over the whole keyspace: no host is
 * overcommitted; every reservation names an existing VM placed on that
 * host; every VM is either placed (phase scheduled, in exactly its host's
 * reservations, with a vm.start queued there) or pending with a reason, a
 * queued vm.create and no reservation anywhere.
 */
async function checkInvariants(store: Store) {
  const [vms, allocs, hosts] = await Promise.all([
    store.list(keys.vms, Vm),
    store.list(keys.allocs, Alloc),
    store.list(keys.hosts, Host),
  ]);
  const capacity = new Map(
    hosts.items.map((h) => [idOf(h.key), h.value.capacity]),
  );
  const placedIn = new Map<string, string[]>();
  for (const a of allocs.items) {
    const host = idOf(a.key);
    const cap = capacity.get(host);
    assert.ok(cap, `alloc for unknown host ${host}`);
    const used = usage(a.value);
    assert.ok(
      used.cpus <= cap.cpus && used.memoryMiB <= cap.memoryMiB &&
        (cap.diskMiB === undefined || (used.diskMiB ?? 0) <= cap.diskMiB),
      `host ${host} overcommitted: ${JSON.stringify(used)} > ${
        JSON.stringify(cap)
      }`,
    );
    for (const id of Object.keys(a.value.vms)) {
      placedIn.set(id, [...placedIn.get(id) ?? [], host]);
    }
  }
  const byId = new Map(vms.items.map((v) => [v.value.id, v.value]));
  for (const [id, hs] of placedIn) {
    assert.equal(hs.length, 1, `vm ${id} reserved on ${hs}`);
    const vm = byId.get(id);
    assert.ok(vm, `reservation of a VM that does not exist: ${id}`);
    assert.equal(vm.status.host, hs[0]);
  }
  const tasks = (await store.list(keys.tasks, Task)).items.map((t) => t.value);
  const queued = (kind: string, target: string, vm: string) =>
    tasks.some((t) =>
      t.kind === kind && t.target === target && t.payload.vm === vm &&
      t.state === "queued"
    );
  let placed = 0, pending = 0, cpus = 0;
  for (const vm of byId.values()) {
    if (vm.status.phase === "scheduled") {
      placed++;
      cpus += vm.spec.cpus;
      assert.deepEqual(placedIn.get(vm.id), [vm.status.host]);
      assert.ok(queued("vm.start", vm.status.host!, vm.id));
      const a = allocs.items.find((x) => idOf(x.key) === vm.status.host);
      assert.deepEqual(a?.value.vms[vm.id], {
        cpus: vm.spec.cpus,
        memoryMiB: vm.spec.memory,
        ...(vm.spec.disk ? { diskMiB: vm.spec.disk * 1024 } : {}),
      });
    } else {
      pending++;
      assert.equal(vm.status.phase, "pending");
      assert.equal(vm.status.host, undefined);
      assert.ok(vm.status.reason, `pending VM ${vm.id} without a reason`);
      assert.equal(placedIn.get(vm.id), undefined);
      assert.ok(queued("vm.create", "any", vm.id));
    }
  }
  return { placed, pending, cpus, vms: byId.size };
}

/** Runs in a child process: its own store, cache and API app. */
const CHILD = `
import { createApp } from "${ROOT}api/app.ts";
import { parseConfig } from "${ROOT}core/config.ts";
import { PlacementCache } from "${ROOT}scheduler/cache.ts";
import { Store } from "${ROOT}core/store.ts";
const env = (n) => Deno.env.get(n);
const config = parseConfig({}, (n) => n === "UCLOUD_SCHEDULER_POLICY" ? env(n) : undefined);
const store = Store.connect({ endpoints: [env("ETCD")], prefix: env("PREFIX") });
const cache = PlacementCache.start(store);
await cache.ready;
const app = createApp({ store, config });
const proc = Number(env("PROC"));
const n = Number(env("N"));
const concurrency = Number(env("C"));
while (!(await store.get("go", { safeParse: (v) => ({ success: true, data: v }) }))) {
  await new Promise((r) => setTimeout(r, 5));
}
const out = [];
let next = 0;
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < n) {
    const i = next++;
    const big = (i + proc) % 3 === 0;
    const res = await app.request("/v1/vms", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "p" + proc + "-" + i, cpus: big ? 2 : 1, memory: big ? 1024 : 512 }),
    });
    const body = await res.json();
    out.push({ status: res.status, id: body.vm?.id, phase: body.vm?.status.phase, host: body.vm?.status.host, reason: body.vm?.status.reason, error: body.error });
  }
}));
console.log(JSON.stringify(out));
await cache.close();
store.close();
Deno.exit(0);
`;

function child(env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", CHILD],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * A placement's result without its `start` (the id of the `vm.start` it
 * enqueued), which must be a task id.
 */
function placed(result: unknown): Record<string, unknown> {
  const { start, ...rest } = result as Record<string, unknown>;
  assert.match(String(start), /^t-/, JSON.stringify(result));
  return rest;
}

function fakeDriver(): VmDriver {
  const no = () => Promise.reject(new Error("not used"));
  return {
    name: "none",
    start: no,
    recover: no,
    inspect: no,
    stop: no,
    reboot: no,
    destroy: no,
    listLocal: () => Promise.resolve([]),
    fence: () => Promise.resolve([]),
    listNics: no,
    plugNic: no,
    unplugNic: no,
  } as VmDriver;
}

function ctxFor(
  store: Store,
  config: Config,
  task: Task,
  worker: WorkerId,
): TaskContext {
  return {
    store,
    config,
    task,
    worker,
    host: worker.name,
    driver: fakeDriver(),
    images: () => Promise.reject(new Error("not used")),
    signal: new AbortController().signal,
    log: logger({ test: "scheduler" }),
    guard: () => guard(store, task.id, worker),
    progress: () => Promise.resolve(),
  };
}

Deno.test({
  name: "scheduler: placement against a real etcd",
  ...noSanitize,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "ucloud-sched-test-" });
    let etcd: EtcdServer | undefined;
    const stores: Store[] = [];
    const caches: PlacementCache[] = [];
    let n = 0;
    const connect = (prefix = `/s/${++n}`) => {
      const store = Store.connect({ endpoints: [etcd!.endpoint], prefix });
      stores.push(store);
      return store;
    };
    const cacheFor = async (store: Store) => {
      const c = PlacementCache.start(store);
      caches.push(c);
      await c.ready;
      return c;
    };
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    const config = parseConfig({}, () => undefined);
    try {
      etcd = await startEtcd({ dataDir: `${dir}/etcd` });

      await step(
        "POST /v1/vms places inline: VM scheduled, reservation and vm.start in one txn",
        async () => {
          const store = connect();
          const lease = await grant(store);
          await register(store, lease, [{
            name: "h1",
            cpus: 2,
            memoryMiB: 1024,
          }]);
          const cache = await cacheFor(store);
          const app = createApp({ store });
          const r = await post(app, { name: "a", cpus: 1, memory: 512 });
          assert.equal(r.status, 201, JSON.stringify(r.body));
          const { vm, task } = r.body;
          assert.equal(vm.status.phase, "scheduled");
          assert.equal(vm.status.host, "h1");
          assert.equal(vm.status.reason, undefined);
          assert.equal(task.kind, "vm.start");
          assert.equal(task.target, "h1");
          const v = await store.get(keys.vm(vm.id), Vm);
          const a = await store.get(keys.alloc("h1"), Alloc);
          const q = await store.get(keys.queue("h1", task.id), z.unknown());
          assert.deepEqual(v?.value, vm);
          assert.deepEqual(a?.value, {
            vms: { [vm.id]: { cpus: 1, memoryMiB: 512 } },
          });
          assert.equal(v?.modRevision, a?.modRevision);
          assert.equal(v?.modRevision, q?.modRevision);
          assert.equal(await store.count(keys.queueOf("any")), 0);
          // The cache has this process's own write at once.
          assert.equal(cache.alloc("h1").modRevision, a?.modRevision);

          // Idempotency-Key: a replay returns the placed VM and its task.
          const headers = { "Idempotency-Key": "k1" };
          const first = await post(
            app,
            { name: "b", cpus: 1, memory: 128 },
            headers,
          );
          assert.equal(first.status, 201);
          assert.equal(first.body.vm.status.phase, "scheduled");
          const again = await post(
            app,
            { name: "b", cpus: 1, memory: 128 },
            headers,
          );
          assert.equal(again.status, 200);
          assert.equal(again.body.vm.id, first.body.vm.id);
          assert.equal(again.body.task.id, first.body.task.id);
          const other = await post(
            app,
            { name: "b", cpus: 2, memory: 128 },
            headers,
          );
          assert.equal(other.status, 409);

          // Full: pending with the reason, vm.create queued for a worker.
          const full = await post(app, { name: "c", cpus: 1, memory: 128 });
          assert.equal(full.status, 201);
          assert.equal(full.body.vm.status.phase, "pending");
          assert.equal(
            full.body.vm.status.reason,
            "no live host has 1 free CPU(s) and 128 MiB free memory " +
              "(1 host(s) checked; largest free: 0 CPU(s), 384 MiB on h1)",
          );
          assert.equal(full.body.task.kind, "vm.create");
          assert.equal(full.body.task.target, "any");

          // The host dies (its lease goes): the cache sees alive/ deleted.
          await revoke(store, lease);
          await waitFor(
            "cache to see h1 dead",
            () => cache.candidate("h1")?.alive === false,
            5000,
            10,
          );
          const dead = await post(app, { name: "d", cpus: 1, memory: 128 });
          assert.equal(dead.body.vm.status.phase, "pending");
          assert.equal(
            dead.body.vm.status.reason,
            "no live host is registered (1 registered: 1 not alive, 0 draining)",
          );
          const inv = await checkInvariants(store);
          assert.deepEqual(inv, { placed: 2, pending: 2, cpus: 2, vms: 4 });
        },
      );

      await step(
        "disk: a VM lands only where its disk fits; none fits: pending, disk named",
        async () => {
          const store = connect();
          const lease = await grant(store);
          await register(store, lease, [
            { name: "h1", cpus: 4, memoryMiB: 4096, diskMiB: 10 * 1024 },
            { name: "h2", cpus: 4, memoryMiB: 4096, diskMiB: 50 * 1024 },
          ]);
          await cacheFor(store);
          // pack would pick the smaller host h1 if disk did not count.
          const pack = parseConfig(
            { scheduler: { policy: "pack" } },
            () => undefined,
          );
          const app = createApp({ store, config: pack });
          const a = await post(app, {
            name: "a",
            cpus: 1,
            memory: 128,
            disk: 20,
          });
          assert.equal(a.status, 201, JSON.stringify(a.body));
          assert.equal(a.body.vm.status.phase, "scheduled");
          assert.equal(a.body.vm.status.host, "h2");
          assert.deepEqual((await store.get(keys.alloc("h2"), Alloc))?.value, {
            vms: {
              [a.body.vm.id]: { cpus: 1, memoryMiB: 128, diskMiB: 20 * 1024 },
            },
          });
          // 40 GiB: h1 has 10, h2 30 left. Pending at create, and the
          // worker's vm.create finds no room either.
          const c = await post(app, {
            name: "c",
            cpus: 1,
            memory: 128,
            disk: 40,
          });
          assert.equal(c.status, 201);
          assert.equal(c.body.vm.status.phase, "pending");
          assert.equal(
            c.body.vm.status.reason,
            "no live host has 1 free CPU(s) and 128 MiB free memory and " +
              "40960 MiB free disk (2 host(s) checked; largest free: " +
              "3 CPU(s), 3968 MiB, 30720 MiB disk on h2; " +
              "short of disk on 2 host(s))",
          );
          const w = { name: "w1", lease: await grant(store) };
          const claimed = await claim(store, c.body.task.id, w);
          assert.ok(claimed);
          const o = await vmCreate(ctxFor(store, config, claimed.value, w));
          assert.match(
            (o.result as { pending: string }).pending,
            /40960 MiB free disk .*short of disk on 2 host\(s\)/,
          );
          assert.ok(await complete(store, claimed.value, w, o.result, o.txn));
          const vm = (await store.get(keys.vm(c.body.vm.id), Vm))!.value;
          assert.equal(vm.status.phase, "pending");
          assert.match(vm.status.reason ?? "", /short of disk/);
          assert.deepEqual(await checkInvariants(store), {
            placed: 1,
            pending: 1,
            cpus: 1,
            vms: 2,
          });
          await revoke(store, w.lease);
          await revoke(store, lease);
        },
      );

      await step(
        "without any host the API still creates pending VMs",
        async () => {
          const store = connect();
          await cacheFor(store);
          const app = createApp({ store });
          const r = await post(app, { name: "a", cpus: 1, memory: 128 });
          assert.equal(r.status, 201);
          assert.equal(r.body.vm.status.phase, "pending");
          assert.equal(r.body.vm.status.reason, "no live host is registered");
          assert.equal(r.body.task.kind, "vm.create");
        },
      );

      await step(
        "4 processes creating 160 VMs at once never overcommit a host",
        async () => {
          const prefix = `/s/${++n}`;
          const store = connect(prefix);
          const lease = await grant(store);
          const hosts = [
            { name: "h1", cpus: 3, memoryMiB: 4096 },
            { name: "h2", cpus: 4, memoryMiB: 2048 },
            { name: "h3", cpus: 5, memoryMiB: 4096 },
            { name: "h4", cpus: 6, memoryMiB: 3072 },
            { name: "h5", cpus: 8, memoryMiB: 8192 },
          ];
          await register(store, lease, hosts);
          const procs = 4, each = 40;
          const children = Array.from({ length: procs }, (_, p) =>
            child({
              ETCD: etcd!.endpoint,
              PREFIX: prefix,
              PROC: String(p),
              N: String(each),
              C: "8",
              UCLOUD_SCHEDULER_POLICY: p % 2 ? "pack" : "spread",
              UCLOUD_LOG_LEVEL: "error",
            }));
          try {
            // Let every child list the hosts and wait for the start signal.
            await new Promise((r) => setTimeout(r, 1500));
            await store.txn().put("go", 1).commit();
            const outs = await Promise.all(children.map((c) => c.output()));
            const results: {
              status: number;
              id: string;
              phase: string;
              host?: string;
              reason?: string;
            }[] = [];
            for (const o of outs) {
              assert.ok(o.success, new TextDecoder().decode(o.stderr));
              results.push(...JSON.parse(new TextDecoder().decode(o.stdout)));
            }
            assert.equal(results.length, procs * each);
            assert.deepEqual(
              results.filter((r) => r.status !== 201),
              [],
            );
            const inv = await checkInvariants(store);
            assert.equal(inv.vms, procs * each);
            assert.equal(new Set(results.map((r) => r.id)).size, inv.vms);
            // What the API answered is what etcd holds.
            for (const r of results) {
              const vm = (await store.get(keys.vm(r.id), Vm))!.value;
              assert.equal(vm.status.phase, r.phase);
              assert.equal(vm.status.host, r.host);
            }
            const capacity = hosts.reduce((s, h) => s + h.cpus, 0);
            assert.ok(inv.placed > 0 && inv.pending > 0);
            // Placement is not only safe but useful: most cores get used.
            assert.ok(
              inv.cpus >= capacity * 0.6,
              `only ${inv.cpus} of ${capacity} cores placed`,
            );
            assert.ok(
              results.some((r) => /^no live host has/.test(r.reason ?? "")),
            );
          } finally {
            for (const c of children) {
              try {
                c.kill("SIGKILL");
              } catch { /* exited */ }
            }
            await revoke(store, lease);
          }
        },
      );

      await step(
        "a placement commits only while the chosen host's lease lives",
        async () => {
          const store = connect();
          const lease = await grant(store);
          await register(store, lease, [{
            name: "h1",
            cpus: 4,
            memoryMiB: 4096,
          }]);
          const app = createApp({ store });
          const a = await post(app, { name: "a", cpus: 1, memory: 128 });
          const w = { name: "w1", lease: await grant(store) };
          const c1 = await claim(store, a.body.task.id, w);
          assert.ok(c1);
          const o = await vmCreate(ctxFor(store, config, c1.value, w));
          assert.deepEqual(placed(o.result), { host: "h1" });
          // The host dies between the choice and the commit.
          await revoke(store, lease);
          assert.equal(
            await complete(store, c1.value, w, o.result, o.txn),
            false,
          );
          assert.equal(await store.get(keys.alloc("h1"), Alloc), null);
          const again = await vmCreate(ctxFor(store, config, c1.value, w));
          assert.match(
            (again.result as { pending: string }).pending,
            /^no live host is registered \(1 registered: 1 not alive/,
          );
          await revoke(store, w.lease);
        },
      );

      await step(
        "vm.create with payload.avoid leaves that host out, falling back to it only when nothing else fits",
        async () => {
          const store = connect();
          const lease = await grant(store);
          await register(store, lease, [
            { name: "h1", cpus: 4, memoryMiB: 4096 },
            { name: "h2", cpus: 1, memoryMiB: 1024 },
          ]);
          const app = createApp({ store });
          const w = { name: "w1", lease: await grant(store) };
          /** Runs one vm.create for a new pending VM moving off `avoid`. */
          const move = async (name: string, avoid: string) => {
            const r = await post(app, { name, cpus: 1, memory: 128 });
            const t = newTask({
              kind: "vm.create",
              target: "any",
              payload: { vm: r.body.vm.id, avoid, reason: "test" },
            });
            assert.ok((await enqueue(store.txn(), t).commit()).ok);
            const c = (await claim(store, t.id, w))!;
            const o = await vmCreate(ctxFor(store, config, c.value, w));
            assert.ok(await complete(store, c.value, w, o.result, o.txn));
            return {
              // deno-lint-ignore no-explicit-any
              result: o.result as any,
              vm: (await store.get(keys.vm(r.body.vm.id), Vm))!.value,
            };
          };
          // h1 has far more room, but the VM moves off it.
          const a = await move("a", "h1");
          assert.deepEqual(placed(a.result), { host: "h2" });
          assert.equal(a.vm.status.host, "h2");
          // h2 is full now: back to h1 rather than waiting.
          const b = await move("b", "h1");
          assert.deepEqual(placed(b.result), {
            host: "h1",
            note: "no host other than h1 fits; placed on h1",
          });
          // Nothing fits anywhere: pending, the reason names the move,
          // and the next try still avoids the host.
          await store.txn().put(keys.host("h1"), hostDoc("h1", 1, 4096))
            .commit();
          const c = await move("c", "h2");
          assert.match(
            c.result.pending,
            /^no live host has 1 free CPU\(s\).*; moving off h2$/,
          );
          assert.equal(c.vm.status.phase, "pending");
          assert.equal(c.vm.status.reason, c.result.pending);
          const next = (await store.get(keys.task(c.result.next), Task))!;
          assert.equal(next.value.payload.avoid, "h2");
          await checkInvariants(store);
          for (const l of [lease, w.lease]) await revoke(store, l);
        },
      );

      for (const withCache of [false, true]) {
        await step(
          `two vm.create handlers race for the last slot: one wins (${
            withCache ? "placement cache" : "listings"
          })`,
          async () => {
            const store = connect();
            const lease = await grant(store);
            await register(store, lease, [{
              name: "h1",
              cpus: 1,
              memoryMiB: 1024,
            }]);
            // No cache yet: the API leaves both VMs pending for workers.
            const app = createApp({ store });
            const a = await post(app, { name: "a", cpus: 1, memory: 128 });
            const b = await post(app, { name: "b", cpus: 1, memory: 128 });
            assert.equal(a.body.vm.status.phase, "pending");
            assert.equal(b.body.vm.status.phase, "pending");
            if (withCache) await cacheFor(store);
            const w1 = { name: "w1", lease: await grant(store) };
            const w2 = { name: "w2", lease: await grant(store) };
            const c1 = await claim(store, a.body.task.id, w1);
            const c2 = await claim(store, b.body.task.id, w2);
            assert.ok(c1 && c2);
            const ctx1 = ctxFor(store, config, c1.value, w1);
            const ctx2 = ctxFor(store, config, c2.value, w2);
            const [o1, o2] = await Promise.all([
              vmCreate(ctx1),
              vmCreate(ctx2),
            ]);
            assert.deepEqual([placed(o1.result), placed(o2.result)], [
              { host: "h1" },
              { host: "h1" },
            ]);
            const oks = await Promise.all([
              complete(store, c1.value, w1, o1.result, o1.txn),
              complete(store, c2.value, w2, o2.result, o2.txn),
            ]);
            assert.equal(oks.filter(Boolean).length, 1, `${oks}`);
            const alloc = await store.get(keys.alloc("h1"), Alloc);
            assert.equal(Object.keys(alloc!.value.vms).length, 1);

            // The loser runs again (as the worker does): no room now.
            const [loser, lw, lctx] = oks[0] ? [c2, w2, ctx2] : [c1, w1, ctx1];
            const before = Date.now();
            const again = await vmCreate(lctx);
            const res = again.result as { pending: string; next: string };
            assert.match(res.pending, /^no live host has 1 free CPU\(s\)/);
            assert.ok(await complete(store, loser.value, lw, res, again.txn));
            const lvm =
              (await store.get(keys.vm(loser.value.payload.vm as string), Vm))!
                .value;
            assert.equal(lvm.status.phase, "pending");
            assert.equal(lvm.status.reason, res.pending);
            // Waiting consumes no attempt: a fresh task, due within 2 s.
            const next = (await store.get(keys.task(res.next), Task))!.value;
            assert.equal(next.attempts, 0);
            assert.equal(next.kind, "vm.create");
            assert.ok(next.notBefore > before);
            assert.ok(next.notBefore <= Date.now() + MAX_WAIT_MS);
            assert.ok(await store.get(keys.queue("any", next.id), z.unknown()));
            await checkInvariants(store);

            // Capacity appears: the next try places it.
            await store.txn().put(keys.host("h1"), hostDoc("h1", 2, 1024))
              .commit();
            if (withCache) {
              const cache = PlacementCache.for(store)!;
              await waitFor(
                "cache to see 2 cpus",
                () => cache.candidate("h1")?.host.capacity.cpus === 2,
                5000,
                10,
              );
            }
            const c3 = await claim(
              store,
              next.id,
              lw,
              new Date(next.notBefore + 1),
            );
            assert.ok(c3);
            const o3 = await vmCreate(ctxFor(store, config, c3.value, lw));
            assert.deepEqual(placed(o3.result), { host: "h1" });
            assert.ok(await complete(store, c3.value, lw, o3.result, o3.txn));
            const inv = await checkInvariants(store);
            assert.deepEqual(inv, { placed: 2, pending: 0, cpus: 2, vms: 2 });
            for (const l of [lease, w1.lease, w2.lease]) await revoke(store, l);
          },
        );
      }
    } finally {
      for (const c of caches) await c.close();
      for (const s of stores) s.close();
      await etcd?.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "scheduler: a pending VM is placed within seconds of capacity appearing",
  ...noSanitize,
  async fn() {
    const c = await startCluster({ guest: false });
    const cache = PlacementCache.start(c.store);
    let lease: string | undefined;
    try {
      c.env.UCLOUD_DRIVER = "sim";
      const w = await c.addWorker({ name: "h1", cpus: 1, memoryMiB: 1024 });
      await waitFor(
        "h1 registered",
        async () => await c.store.get(keys.alive("h1"), Alive),
        30_000,
      ).catch(
        async (err) => {
          throw new Error(`${err.message}\n${await w.log()}`);
        },
      );
      await cache.ready;
      await waitFor(
        "cache to see h1",
        () => cache.candidate("h1")?.alive === true,
        5000,
        10,
      );
      const app = createApp({ store: c.store });
      const r = await post(app, { name: "big", cpus: 2, memory: 256 });
      assert.equal(r.status, 201);
      const id = r.body.vm.id as string;
      assert.equal(r.body.vm.status.phase, "pending");
      assert.equal(
        r.body.vm.status.reason,
        "no live host has 2 free CPU(s) and 256 MiB free memory " +
          "(1 host(s) checked; largest free: 1 CPU(s), 1024 MiB, " +
          "102400 MiB disk on h1)",
      );
      // The worker's vm.create finds no room either and waits.
      await waitFor("the worker to try vm.create", async () => {
        const t = await c.store.get(keys.task(r.body.task.id), Task);
        return t?.value.state === "succeeded";
      }, 15_000).catch(async (err) => {
        throw new Error(`${err.message}\n${await w.log()}`);
      });
      const vm = (await c.store.get(keys.vm(id), Vm))!.value;
      assert.equal(vm.status.phase, "pending");
      assert.match(vm.status.reason ?? "", /^no live host has 2 free CPU/);

      // A bigger host appears (registered by hand, no worker needed).
      lease = await grant(c.store);
      await register(c.store, lease, [{
        name: "h2",
        cpus: 4,
        memoryMiB: 4096,
      }]);
      const t0 = Date.now();
      const placed = await waitFor(
        "the VM placed on h2",
        async () => {
          const v = (await c.store.get(keys.vm(id), Vm))?.value;
          return v?.status.host === "h2" ? v : null;
        },
        10_000,
        20,
      ).catch(async (err) => {
        throw new Error(`${err.message}\n${await w.log()}`);
      });
      const ms = Date.now() - t0;
      assert.equal(placed.status.phase, "scheduled");
      assert.equal(placed.status.reason, undefined);
      assert.ok(ms < MAX_WAIT_MS + 2000, `placed after ${ms} ms`);
      const alloc = await c.store.get(keys.alloc("h2"), Alloc);
      assert.deepEqual(alloc?.value.vms[id], { cpus: 2, memoryMiB: 256 });
      // No attempt was spent waiting; at most the first and the last
      // vm.create documents remain.
      const tasks = (await c.store.list(keys.tasks, Task)).items
        .map((t) => t.value).filter((t) => t.payload.vm === id);
      const creates = tasks.filter((t) => t.kind === "vm.create");
      assert.ok(creates.length <= 2, JSON.stringify(creates));
      assert.ok(
        creates.every((t) => t.state === "succeeded" && t.attempts === 1),
      );
      assert.ok(tasks.some((t) => t.kind === "vm.start" && t.target === "h2"));
    } finally {
      await cache.close();
      if (lease) await revoke(c.store, lease);
      await c.stop();
    }
  },
});
