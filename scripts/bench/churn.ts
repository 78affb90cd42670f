/**
 * The churn benchmark (issue 13): does etcd stay bounded over a simulated
 * month? One host with a real worker process and the sim driver, the API
 * in-process; each cycle creates a VM, waits until it runs, deletes it and
 * waits until it is gone, `inFlight` cycles at a time. Time is compressed:
 * etcd keeps 2 s of history (`--auto-compaction-retention=2s`), finished
 * tasks are kept `retentionSeconds`, and the maintenance round
 * (tasks/maintenance_round.ts) runs every `roundEveryMs`. After the last
 * cycle, one retention period and a last round, it measures the keys
 * (total and by first path segment), the etcd database (file and in use),
 * the revision and the history etcd still holds (revision minus the oldest
 * revision it can read). Run it for two cycle counts: a bounded etcd gives
 * the same figures for both, except the revision counter itself.
 *
 * Creates carry no Idempotency-Key: those expire after a real 24 h, which
 * a compressed month cannot show.
 *
 * Usage: `deno run -A scripts/bench/main.ts --only=churn
 * [--cycles=2000,10000]`.
 */
import { createApp } from "../../api/app.ts";
import { ConfigSchema } from "../../core/config.ts";
import { memberStatuses } from "../../core/etcd_members.ts";
import { keys } from "../../core/keys.ts";
import { Alive, Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { maintenanceOnce } from "../../tasks/maintenance_round.ts";
import { startCluster, waitFor } from "../../tests/helpers/cluster.ts";
import { decodeRaw, watchPrefix } from "../../core/watch.ts";
import { type Cleanup, progress, round, type Row, sleep } from "./util.ts";
import { z } from "zod";

export interface ChurnOptions {
  /** Create/delete cycles. */
  cycles: number;
  /** Cycles at a time. */
  inFlight?: number;
  /** Finished tasks are kept this long. */
  retentionSeconds?: number;
  /** The maintenance round runs this often. */
  roundEveryMs?: number;
}

/** What one run left in etcd. */
export interface ChurnRun {
  cycles: number;
  seconds: number;
  cyclesPerS: number;
  /** Keys under the prefix at the end, and by first path segment. */
  keys: number;
  keysByPrefix: Record<string, number>;
  /** etcd's database file and the bytes of it in use, at the end. */
  dbSize: number;
  dbSizeInUse: number;
  /** The largest database file seen during the run. */
  dbSizeMax: number;
  revision: number;
  /** Revisions etcd still holds (revision - oldest readable). */
  historyRevisions: number;
  rounds: number;
  tasksDeleted: number;
  defrags: number;
}

const WAIT_MS = 60_000;

/** The oldest revision etcd can still read (binary search, cheap reads). */
async function oldestReadable(store: Store, current: number): Promise<number> {
  const readable = async (rev: number) => {
    try {
      await store.list("host/", z.unknown(), {
        revision: String(rev),
        limit: 1,
      });
      return true;
    } catch (err) {
      if (/compacted/.test(String(err))) return false;
      throw err;
    }
  };
  let lo = 1;
  let hi = current;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (await readable(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Every VM's phase ("gone" once deleted) from one watch of `vm/`, so the
 * cycles wait on events instead of each polling its VM: at 16 cycles in
 * flight polling cost 320 reads/s, as much as the churn itself.
 */
class PhaseWatch {
  #phases = new Map<string, string>();
  #waiters = new Set<() => void>();
  #abort = new AbortController();
  #done: Promise<void>;

  constructor(store: Store) {
    const set = (key: string, value: string | null) => {
      const id = key.slice("vm/".length);
      const vm = value === null
        ? null
        : decodeRaw({ key, value, modRevision: "0" }, Vm);
      this.#phases.set(id, vm?.status.phase ?? "gone");
    };
    this.#done = watchPrefix(store, "vm/", {
      signal: this.#abort.signal,
      onReset: (items) => {
        for (const id of this.#phases.keys()) this.#phases.set(id, "gone");
        for (const kv of items) set(kv.key, kv.value);
        this.#wake();
      },
      onEvent: (ev) => {
        set(ev.key, ev.type === "put" ? ev.value : null);
        this.#wake();
      },
    });
  }

  #wake() {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves once `ok(phase)` holds for the VM; rejects after WAIT_MS. */
  until(id: string, ok: (phase: string) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        try {
          const p = this.#phases.get(id);
          if (p === undefined || !ok(p)) return;
          finish();
          resolve();
        } catch (err) {
          finish();
          reject(err);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${id}: ${this.#phases.get(id)} after ${WAIT_MS} ms`));
      }, WAIT_MS);
      const finish = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (this.#phases.get(id) === "gone") this.#phases.delete(id);
      };
      this.#waiters.add(check);
      check();
    });
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#done;
  }
}

/** Runs `opts.cycles` create/delete cycles in a fresh cluster. */
export async function churnRun(
  opts: ChurnOptions,
  cleanup?: Cleanup,
): Promise<ChurnRun> {
  const inFlight = opts.inFlight ?? 16;
  const retentionSeconds = opts.retentionSeconds ?? 5;
  const roundEveryMs = opts.roundEveryMs ?? 2000;
  const c = await startCluster({
    guest: false,
    etcd: { compaction: { mode: "periodic", retention: "2s" } },
  });
  c.env.UCLOUD_DRIVER = "sim";
  let down: Promise<void> | undefined;
  const teardown = () => down ??= c.stop();
  cleanup?.add("churn cluster", teardown);
  const store = c.store;
  const config = {
    maintenance: {
      ...ConfigSchema.shape.maintenance.parse(undefined),
      taskRetentionSeconds: retentionSeconds,
      defragMinFreeBytes: 1024 ** 2,
    },
  };
  let rounds = 0;
  let tasksDeleted = 0;
  let defrags = 0;
  let dbSizeMax = 0;
  const maintain = async () => {
    const r = await maintenanceOnce(store, config, { by: "bench" });
    rounds++;
    tasksDeleted += r.tasks?.deleted ?? 0;
    defrags += r.etcd.filter((m) => m.defragmented).length;
    dbSizeMax = Math.max(dbSizeMax, ...r.etcd.map((m) => m.dbSize));
  };
  try {
    await c.addWorker({ name: "h1", cpus: 4 * inFlight, memoryMiB: 1 << 20 });
    await waitFor("h1 alive", () => store.get(keys.alive("h1"), Alive));
    const app = createApp({ store: c.store });
    const send = async (method: string, path: string, body?: unknown) => {
      const res = await app.request(path, {
        method,
        headers: { "content-type": "application/json" },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      if (res.status >= 300) {
        throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      }
      return await res.json();
    };
    const phases = new PhaseWatch(store);
    cleanup?.add("churn phase watch", () => phases.stop());
    const cycle = async (i: number) => {
      const { vm } = await send("POST", "/v1/vms", {
        name: `churn-${i}`,
        cpus: 1,
        memory: 128,
      });
      await phases.until(vm.id, (p) => {
        if (p === "error") throw new Error(`${vm.id} failed`);
        return p === "running";
      });
      await send("DELETE", `/v1/vms/${vm.id}`);
      await phases.until(vm.id, (p) => p === "gone");
    };
    let next = 0;
    let done = 0;
    let stop = false;
    const rounder = (async () => {
      while (!stop) {
        await sleep(roundEveryMs);
        if (!stop) await maintain();
      }
    })();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < opts.cycles) {
          await cycle(next++);
          if (++done % 500 === 0) {
            progress(`churn: ${done}/${opts.cycles} cycles`);
          }
        }
      }),
    ).finally(() => {
      stop = true;
      phases.stop();
    });
    const seconds = (performance.now() - t0) / 1000;
    await rounder;
    // Past the retention and etcd's compaction, then a last round.
    await sleep(retentionSeconds * 1000 + 3000);
    await maintain();
    await sleep(500);
    const all = await store.keys("");
    const keysByPrefix: Record<string, number> = {};
    for (const k of all) {
      const p = k.slice(0, k.indexOf("/") + 1) || k;
      keysByPrefix[p] = (keysByPrefix[p] ?? 0) + 1;
    }
    const [m] = await memberStatuses(store);
    const revision = Number(m.revision);
    return {
      cycles: opts.cycles,
      seconds: round(seconds),
      cyclesPerS: round(opts.cycles / seconds),
      keys: all.length,
      keysByPrefix,
      dbSize: m.dbSize,
      dbSizeInUse: m.dbSizeInUse,
      dbSizeMax: Math.max(dbSizeMax, m.dbSize),
      revision,
      historyRevisions: revision - await oldestReadable(store, revision),
      rounds,
      tasksDeleted,
      defrags,
    };
  } finally {
    await teardown();
  }
}

/** Table rows: one group per run. */
export function churnRows(runs: ChurnRun[]): Row[] {
  const mib = (b: number) => round(b / 1024 ** 2, 2);
  return runs.flatMap((r) => {
    const at = `churn ${r.cycles} cycles`;
    return [
      {
        name: `${at}: rate`,
        value: r.cyclesPerS,
        unit: "cycles/s",
        notes: `${r.seconds} s, ${r.rounds} maintenance rounds`,
      },
      {
        name: `${at}: keys left`,
        value: r.keys,
        unit: "keys",
        notes: Object.entries(r.keysByPrefix).map(([p, n]) => `${p} ${n}`)
          .join(", "),
      },
      {
        name: `${at}: etcd db`,
        value: mib(r.dbSize),
        unit: "MiB",
        notes: `${mib(r.dbSizeInUse)} MiB in use, at most ${
          mib(r.dbSizeMax)
        } MiB during the run, ${r.defrags} defrag(s)`,
      },
      {
        name: `${at}: history`,
        value: r.historyRevisions,
        unit: "revisions",
        notes: `revision ${r.revision}; ${r.tasksDeleted} tasks deleted`,
      },
    ];
  });
}
