/**
 * Runs task handlers outside a worker process, on real components: a
 * throwaway etcd, a host incarnation (a real lease bound to `alive/<host>`),
 * a task claimed under that lease, and the sim VM driver in a temp state
 * dir. For tests that interleave a handler with other writers.
 */
import { type Config, parseConfig } from "../../core/config.ts";
import { type EtcdServer, startEtcd } from "../../core/etcd_server.ts";
import { keys } from "../../core/keys.ts";
import { logger } from "../../core/log.ts";
import { Alive, Alloc, AllocEntry, type Vm } from "../../core/schemas.ts";
import {
  type Need,
  needOf,
  reserve,
  sizeOf,
} from "../../scheduler/resources.ts";
import { reserveIn } from "../../scheduler/place.ts";
import { Store } from "../../core/store.ts";
import { SimDriver } from "../../drivers/sim/driver.ts";
import type { TaskContext, VmDriver } from "../../tasks/context.ts";
import {
  claim,
  enqueue,
  guard,
  newTask,
  type WorkerId,
} from "../../tasks/queue.ts";

export interface Bench {
  store: Store;
  config: Config;
  driver: SimDriver;
  /** Registers an incarnation of `host`: a lease and `alive/<host>`. */
  incarnation(host: string, ttlSeconds?: number): Promise<WorkerId>;
  /** Enqueues and claims a task for `worker`; the handler's context. */
  context(
    worker: WorkerId,
    kind: string,
    payload: Record<string, unknown>,
    driver?: VmDriver,
  ): Promise<TaskContext>;
  /**
   * Writes a VM document as given, reserved on its `status.host` as
   * placement does (its size, {@linkcode reserveOn}).
   */
  putVm(vm: Vm): Promise<void>;
}

/** What a fixture VM reserves unless told: 1 CPU, 128 MiB. */
const FIXTURE_NEED: Need = { cpus: 1, memoryMiB: 128 };

/**
 * Reserves VM `id` on `host` the way placement does, with its function
 * (scheduler/place.ts `reserveIn()`): the sums `alloc/<host>` compared
 * and rewritten with `need` added, the entry `allocvm/<host>/<id>` put,
 * bound to the host's `alive/` lease as read (none: no alive key).
 * Retried on a lost compare; a VM reserved there already is left as it is.
 */
export async function reserveOn(
  store: Store,
  host: string,
  id: string,
  need: Need = FIXTURE_NEED,
): Promise<void> {
  for (;;) {
    const [alloc, alive] = await Promise.all([
      store.get(keys.alloc(host), Alloc),
      store.get(keys.alive(host), Alive),
    ]);
    const r = await reserveIn(store.txn(), {
      vm: id,
      host,
      lease: alive?.lease ?? "0",
      alloc: reserve(alloc?.value ?? null, need),
      entry: sizeOf(need),
      allocRevision: alloc?.modRevision ?? "0",
    }).commit();
    if (r.ok) return;
    if (await store.get(keys.allocVm(host, id), AllocEntry)) return;
  }
}

/** A VM document placed on `host` (owner `incarnation`), for fixtures. */
export function vmDoc(
  id: string,
  status: Partial<Vm["status"]>,
  more: Partial<Vm> = {},
): Vm {
  return {
    id,
    owner: "alice",
    spec: { name: id, cpus: 1, memory: 128, image: "tiny" },
    nics: [],
    desired: "running",
    status: {
      phase: "running",
      updatedAt: new Date().toISOString(),
      ...status,
    },
    createdAt: new Date().toISOString(),
    ...more,
  };
}

/** Runs `f` with a fresh etcd and sim state dir; tears both down. */
export async function withBench(f: (b: Bench) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "uc-ctx-" });
  const etcd: EtcdServer = await startEtcd({ dataDir: `${dir}/etcd` });
  const env: Record<string, string> = {
    UCLOUD_ETCD: etcd.endpoint,
    UCLOUD_PREFIX: "/ctx",
    UCLOUD_STATE: `${dir}/state`,
    UCLOUD_CONFIG: `${dir}/none.json`,
  };
  const config = parseConfig({}, (n) => env[n]);
  const store = Store.connect(config.etcd);
  const driver = new SimDriver({ stateDir: `${dir}/state` });
  const log = logger({ component: "test" });
  const bench: Bench = {
    store,
    config,
    driver,
    async incarnation(host, ttlSeconds = 30) {
      const lease = await store.grantLease(ttlSeconds);
      const alive = { incarnation: lease, started: "", pid: 1, lease };
      await store.txn().put(keys.alive(host), alive, { lease }).commit();
      return { name: host, lease };
    },
    async context(worker, kind, payload, d = driver) {
      const task = newTask({ kind, target: worker.name, payload });
      await enqueue(store.txn(), task).commit();
      const claimed = await claim(store, task.id, worker);
      if (!claimed) throw new Error(`Cannot claim task ${task.id}`);
      return {
        store,
        config,
        task: claimed.value,
        worker,
        host: worker.name,
        driver: d,
        images: () => Promise.resolve({ disk: "/dev/null", format: "raw" }),
        signal: new AbortController().signal,
        log: log.child({ task: task.id }),
        guard: () => guard(store, task.id, worker),
        progress: () => Promise.resolve(),
      };
    },
    async putVm(vm) {
      await store.txn().put(keys.vm(vm.id), vm).commit();
      if (vm.status.host) {
        await reserveOn(store, vm.status.host, vm.id, needOf(vm));
      }
    },
  };
  try {
    await f(bench);
  } finally {
    await driver.fence();
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
