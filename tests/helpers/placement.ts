/**
 * Fixtures of the scheduler tests against a real etcd: hosts registered by
 * hand (`host/` + `alive/` bound to a lease, so no worker is needed where
 * only placement matters), POSTs to the API app, a task context for
 * calling the `vm.create` handler directly, the placement invariants over
 * the whole keyspace, and {@linkcode placementTest}, one etcd shared by
 * the steps of a test.
 */
import assert from "node:assert/strict";
import type { createApp } from "../../api/app.ts";
import { type Config, parseConfig } from "../../core/config.ts";
import { type EtcdServer, startEtcd } from "../../core/etcd_server.ts";
import { idOf, keys } from "../../core/keys.ts";
import { logger } from "../../core/log.ts";
import { SchedulerConfig } from "../../core/config_scheduler.ts";
import type { ResourceDeps } from "../../resources/deps.ts";
import { PlacementCache } from "../../scheduler/cache.ts";
import {
  type Alive,
  Alloc,
  AllocEntry,
  Host,
  Task,
  Vm,
} from "../../core/schemas.ts";
import { Store } from "../../core/store.ts";
import type { TaskContext, VmDriver } from "../../tasks/context.ts";
import { guard, type WorkerId } from "../../tasks/queue.ts";
import {
  effective,
  NO_ALLOC,
  reserve,
  sumsOf,
  usage,
} from "../../scheduler/mod.ts";

/** Test options that turn off Deno's op and resource sanitizers. */
export const noSanitize = { sanitizeOps: false, sanitizeResources: false };
type App = ReturnType<typeof createApp>;

/** POSTs `body` to the app's `/v1/vms`; its status and JSON body. */
export async function post(app: App, body: unknown, headers = {}) {
  const res = await app.request("/v1/vms", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  // deno-lint-ignore no-explicit-any
  return { status: res.status, body: await res.json() as any };
}

/** A lease of `ttl` seconds; its id. */
export async function grant(store: Store, ttl = 60): Promise<string> {
  const res = await store.client.leaseClient.leaseGrant({ TTL: ttl });
  return String(res.ID);
}

/** Revokes `lease` (no error if it is gone). */
export async function revoke(store: Store, lease: string): Promise<void> {
  await store.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => {});
}

/** A host document with capacity `cpus`, `memoryMiB` (and `diskMiB`). */
export const hostDoc = (
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
export async function register(
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
 * Checks the invariants of placement over the whole keyspace: no host has
 * more reserved than it offers (`effective()`); a host's sums
 * (`alloc/<host>`) are exactly those of its entries (`allocvm/<host>/`);
 * every reservation names an existing VM placed on that host; every VM is
 * either placed (phase
 * scheduled, in exactly its host's reservations, with a vm.start queued
 * there) or pending with a reason, a queued vm.create and no reservation
 * anywhere.
 */
export async function checkInvariants(store: Store) {
  const [vms, allocs, hosts, entries] = await Promise.all([
    store.list(keys.vms, Vm),
    store.list(keys.allocs, Alloc),
    store.list(keys.hosts, Host),
    store.list(keys.allocVms, AllocEntry),
  ]);
  const entriesOf = new Map<string, Map<string, AllocEntry>>();
  for (const e of entries.items) {
    const [host, id] = e.key.slice(keys.allocVms.length).split("/");
    const on = entriesOf.get(host) ?? new Map<string, AllocEntry>();
    entriesOf.set(host, on.set(id, e.value));
  }
  const capacity = new Map(
    hosts.items.map((h) => [idOf(h.key), effective(h.value)]),
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
    const own = entriesOf.get(host) ?? new Map<string, AllocEntry>();
    const legacy = Object.fromEntries(sumsOf(a.value).legacy);
    let sums: Alloc | null = null;
    for (const e of own.values()) sums = reserve(sums, e);
    assert.deepEqual(
      a.value,
      { ...(sums ?? NO_ALLOC), vms: { ...(sums ?? NO_ALLOC).vms, ...legacy } },
      `host ${host}: sums unlike its entries`,
    );
    for (const id of [...own.keys(), ...Object.keys(legacy)]) {
      placedIn.set(id, [...placedIn.get(id) ?? [], host]);
    }
  }
  for (const host of entriesOf.keys()) {
    assert.ok(
      allocs.items.some((a) => idOf(a.key) === host),
      `entries without sums on ${host}`,
    );
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
      assert.deepEqual(entriesOf.get(vm.status.host!)?.get(vm.id), {
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

/**
 * A placement's result without its `start` (the id of the `vm.start` it
 * enqueued), which must be a task id.
 */
export function placed(result: unknown): Record<string, unknown> {
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

/** A task context for running `task`'s handler as `worker` (no driver). */
export function ctxFor(
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

/** A VM of 2 CPUs: it fits on no host of {@linkcode oneSmallHost}. */
export const WAITING_VM = { name: "big", cpus: 2, memory: 128, image: "tiny" };

/**
 * A fresh store with a ready placement cache and one live host `h1` of 1
 * CPU (its alive key on `lease`), and the VM resource's deps on it with
 * `scheduler.maxPendingVmsPerUser` set: a {@linkcode WAITING_VM} waits.
 */
export async function oneSmallHost(
  env: Pick<PlacementEnv, "connect" | "cacheFor" | "config">,
  maxPendingVmsPerUser: number,
): Promise<{ store: Store; lease: string; deps: ResourceDeps }> {
  const store = env.connect();
  await env.cacheFor(store);
  const lease = await grant(store);
  await register(store, lease, [{ name: "h1", cpus: 1, memoryMiB: 4096 }]);
  const scheduler = SchedulerConfig.parse({ maxPendingVmsPerUser });
  return {
    store,
    lease,
    deps: { store, config: { ...env.config, scheduler } },
  };
}

/** What the steps of a {@linkcode placementTest} share. */
export interface PlacementEnv {
  /** The etcd of this test, shared by all its steps. */
  etcd: EtcdServer;
  /** The default config. */
  config: Config;
  /** A store on `prefix` (a fresh one by default); closed at the end. */
  connect(prefix?: string): Store;
  /** A fresh key prefix (`/s/<n>`). */
  nextPrefix(): string;
  /** A placement cache on `store`, ready; closed at the end. */
  cacheFor(store: Store): Promise<PlacementCache>;
  /** Runs one step (sanitizers off). */
  step(name: string, fn: () => Promise<void>): Promise<boolean>;
}

/**
 * Registers test `name`: one etcd in a temp dir, `body` runs its steps on
 * it; stores, caches, etcd and the dir are removed at the end.
 */
export function placementTest(
  name: string,
  body: (env: PlacementEnv) => Promise<void>,
): void {
  Deno.test({
    name,
    ...noSanitize,
    async fn(t) {
      const dir = await Deno.makeTempDir({ prefix: "ucloud-sched-test-" });
      let etcd: EtcdServer | undefined;
      const stores: Store[] = [];
      const caches: PlacementCache[] = [];
      let n = 0;
      const nextPrefix = () => `/s/${++n}`;
      const connect = (prefix = nextPrefix()) => {
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

        await body({ step, connect, cacheFor, config, etcd, nextPrefix });
      } finally {
        for (const c of caches) await c.close();
        for (const s of stores) s.close();
        await etcd?.stop("SIGKILL");
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  });
}
