/**
 * The ucloud benchmark (`deno task bench`). In one run, against throwaway
 * etcd servers it starts and stops itself, it measures:
 *
 * - `cas`:   raw etcd compare-and-swap transactions (`ifAbsent(k).put(k)` on
 *            distinct keys), one at a time and 64 in flight;
 * - `claim`: the task queue's worker cycle, `claim()` + `complete()`, over
 *            pre-enqueued tasks, one at a time and 64 in flight, and its
 *            ratio to the CAS rate at the same concurrency;
 * - `api`:   `POST /v1/vms` latency over real HTTP (`Deno.serve` of the
 *            in-process app) at a fixed client concurrency, no workers;
 * - `place`: placement throughput: 100 hosts registered by hand (host and
 *            alive documents, one lease, no worker processes), 10,000 VMs
 *            created through the in-process app (`app.request`, 64 in
 *            flight) with its placement cache, so each VM is placed inline
 *            in the transaction that creates it. Reports VMs placed per
 *            second, etcd transactions, revisions and keys written per VM
 *            (counted on the store's client), the ratio to this run's CAS
 *            rate, and checks afterwards that no host is overcommitted;
 * - `vm`:    with one real worker process running qemu (TCG, tiny test
 *            guest), the time from sending `POST /v1/vms` to QMP
 *            `query-status` "running" and to the guest's serial marker
 *            `UCLOUD-GUEST-READY`, one VM after another;
 * - `failover`: SIGKILL of a host running qemu VMs, until they run elsewhere
 *            (scripts/bench_failover.ts);
 * - `failover-sim`: the same with 50 sim VMs on the killed host, and an
 *            orderly worker restart (SIGTERM, a gap, a new worker) counting
 *            the VMs it restarted (scripts/bench_failover_sim.ts);
 * - `net`:   the network driver's sync and NIC hot-plug (scripts/bench_net.ts).
 *
 * Prints a table (name, value, unit, notes) and then one JSON line with
 * every figure, also written to `bench-results.json` in the working
 * directory unless `--no-write`. Progress goes to stderr.
 *
 * Usage:
 *   deno run -A scripts/bench.ts [--quick]
 *     [--only=cas,claim,api,place,vm,failover,failover-sim,net]
 *     [--no-write] [--n=2000] [--vms=10] [--place-vms=10000]
 *     [--hosts=100] [--policy=spread|pack] [--gap-ms=5000]
 *
 * `--quick` (smaller N, 20 hosts and 500 placements, 3 VMs, 1 kill, 5 sim
 * VMs) is the test suite's smoke run. `--gap-ms`: how long the orderly
 * restart of failover-sim leaves the host without a worker process.
 * Everything started here (etcd, HTTP servers, the worker, qemu VMs, temp
 * dirs) is torn down in `finally`, on SIGINT/SIGTERM, and by a watchdog.
 */
import { type FailoverRun, failoverRun } from "./bench_failover.ts";
import {
  type FailoverSimResult,
  failoverSimRows,
  failoverSimRun,
} from "./bench_failover_sim.ts";
import { createApp } from "../api/app.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { PlacementCache } from "../scheduler/cache.ts";
import { Alive, Alloc, Host, Vm } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { queryStatus } from "../drivers/qemu/qmp.ts";
import {
  claim,
  complete,
  enqueue,
  newTask,
  type WorkerId,
} from "../tasks/queue.ts";
import {
  type Cluster,
  qemuPids,
  startCluster,
  waitFor,
} from "../tests/helpers/cluster.ts";
import { type Policy, usage as allocUsage } from "../scheduler/mod.ts";
import { benchNet, type NetResult } from "./bench_net.ts";
import {
  Cleanup,
  countCalls,
  rate,
  round,
  type Row,
  sleep,
  summarize,
  type Summary,
  table,
  timedPool,
} from "./bench_util.ts";

const PHASES = [
  "cas",
  "claim",
  "api",
  "place",
  "vm",
  "failover",
  "failover-sim",
  "net",
] as const;
type Phase = typeof PHASES[number];

const MARKER = "UCLOUD-GUEST-READY";
/** Private networks (one port each) the net phase syncs. */
const NET_NETWORKS = 50;
const IN_FLIGHT = 64;
const API_CLIENTS = 16;
/** How often the VM phase polls etcd, QMP and the serial log. */
const POLL_MS = 20;
/** Per-VM limit from POST to the guest marker. */
const VM_TIMEOUT_MS = 60_000;

interface Options {
  quick: boolean;
  only: Set<Phase>;
  write: boolean;
  n: number;
  apiRequests: number;
  vms: number;
  warmupVms: number;
  placeVms: number;
  placeHosts: number;
  policy: Policy;
  gapMs: number;
}

function usage(): never {
  console.error(
    "usage: deno run -A scripts/bench.ts [--quick] " +
      "[--only=cas,claim,api,place,vm,failover,failover-sim,net] [--no-write] " +
      "[--n=N] [--vms=N] [--place-vms=N] [--hosts=N] [--policy=spread|pack] " +
      "[--gap-ms=MS]",
  );
  Deno.exit(2);
}

function parseArgs(args: string[]): Options {
  let quick = false;
  let write = true;
  let only = new Set<Phase>(PHASES);
  let n: number | undefined;
  let vms: number | undefined;
  let placeVms: number | undefined;
  let placeHosts: number | undefined;
  let policy: Policy = "spread";
  let gapMs = 5000;
  const int = (v: string, min: number) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < min) usage();
    return x;
  };
  for (const a of args) {
    const [flag, value] = a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, ""];
    if (flag === "--quick") quick = true;
    else if (flag === "--no-write") write = false;
    else if (flag === "--only") {
      const names = value.split(",").map((s) => s.trim()).filter(Boolean);
      if (!names.length || names.some((s) => !PHASES.includes(s as Phase))) {
        console.error(`--only takes a list of ${PHASES.join(",")}`);
        usage();
      }
      only = new Set(names as Phase[]);
      // Placement is judged against the raw CAS rate of the same run.
      if (only.has("place")) only.add("cas");
    } else if (flag === "--n") n = int(value, 1);
    else if (flag === "--vms") vms = int(value, 1);
    else if (flag === "--place-vms") placeVms = int(value, 1);
    else if (flag === "--hosts") placeHosts = int(value, 1);
    else if (flag === "--gap-ms") gapMs = int(value, 0);
    else if (flag === "--policy") {
      if (value !== "spread" && value !== "pack") usage();
      policy = value;
    } else usage();
  }
  return {
    quick,
    only,
    write,
    n: n ?? (quick ? 300 : 2000),
    apiRequests: quick ? 200 : 1000,
    vms: vms ?? (quick ? 3 : 10),
    warmupVms: quick ? 0 : 1,
    placeVms: placeVms ?? (quick ? 500 : 10_000),
    placeHosts: placeHosts ?? (quick ? 20 : 100),
    policy,
    gapMs,
  };
}

function progress(msg: string): void {
  console.error(`bench: ${msg}`);
}

/** A store on `endpoint` under its own prefix, so phases never collide. */
function storeFor(endpoint: string, prefix: string): Store {
  return Store.connect({ endpoints: [endpoint], prefix, timeoutMs: 5000 });
}

// ---------------------------------------------------------------- cas

interface CasResult {
  n: number;
  concurrency: number;
  serialOpsPerS: number;
  parallelOpsPerS: number;
  serialLatencyMs: Summary;
  parallelLatencyMs: Summary;
  failed: number;
}

async function benchCas(endpoint: string, n: number): Promise<CasResult> {
  const store = storeFor(endpoint, "/bench/cas");
  try {
    const cas = async (key: string) =>
      (await store.txn().ifAbsent(key).put(key, { v: 1 }).commit()).ok;
    await timedPool(100, 8, (i) => cas(`warm/${i}`));
    progress(`cas: ${n} txns one at a time`);
    const serial = await timedPool(n, 1, (i) => cas(`serial/${i}`));
    progress(`cas: ${n} txns, ${IN_FLIGHT} in flight`);
    const par = await timedPool(n, IN_FLIGHT, (i) => cas(`parallel/${i}`));
    return {
      n,
      concurrency: IN_FLIGHT,
      serialOpsPerS: rate(n, serial.elapsedMs),
      parallelOpsPerS: rate(n, par.elapsedMs),
      serialLatencyMs: summarize(serial.latencies),
      parallelLatencyMs: summarize(par.latencies),
      failed: serial.failed + par.failed,
    };
  } finally {
    store.close();
  }
}

// ---------------------------------------------------------------- claim

interface ClaimResult {
  n: number;
  concurrency: number;
  serialTasksPerS: number;
  parallelTasksPerS: number;
  serialLatencyMs: Summary;
  parallelLatencyMs: Summary;
  /** Claims that returned null or completes that returned false. */
  failed: number;
  ratioToCasSerial: number | null;
  ratioToCasParallel: number | null;
}

async function benchClaim(
  endpoint: string,
  n: number,
  cas: CasResult | undefined,
): Promise<ClaimResult> {
  const store = storeFor(endpoint, "/bench/claim");
  let lease: string | undefined;
  try {
    const granted = await store.client.leaseClient.leaseGrant({ TTL: 600 });
    lease = String(granted.ID);
    const worker: WorkerId = { name: "bench", lease };
    const fill = async (count: number): Promise<string[]> => {
      const tasks = Array.from(
        { length: count },
        () => newTask({ kind: "bench.noop", target: "bench", payload: {} }),
      );
      await timedPool(tasks.length, IN_FLIGHT, async (i) => {
        if (!(await enqueue(store.txn(), tasks[i]).commit()).ok) {
          throw new Error(`Cannot enqueue task ${tasks[i].id}`);
        }
      });
      return tasks.map((t) => t.id);
    };
    const cycle = async (id: string) => {
      const c = await claim(store, id, worker);
      if (!c) return false;
      return await complete(store, c.value, worker, { ok: true });
    };
    progress(`claim: enqueueing ${2 * n + 100} tasks (not timed)`);
    const warm = await fill(100);
    const serialIds = await fill(n);
    const parIds = await fill(n);
    await timedPool(warm.length, 8, (i) => cycle(warm[i]));
    progress(`claim: ${n} claim+complete one at a time`);
    const serial = await timedPool(n, 1, (i) => cycle(serialIds[i]));
    progress(`claim: ${n} claim+complete, ${IN_FLIGHT} in flight`);
    const par = await timedPool(n, IN_FLIGHT, (i) => cycle(parIds[i]));
    const left = await store.count(keys.queues);
    if (left !== 0) {
      throw new Error(`${left} queue entries left after claiming every task`);
    }
    const serialRate = rate(n, serial.elapsedMs);
    const parRate = rate(n, par.elapsedMs);
    return {
      n,
      concurrency: IN_FLIGHT,
      serialTasksPerS: serialRate,
      parallelTasksPerS: parRate,
      serialLatencyMs: summarize(serial.latencies),
      parallelLatencyMs: summarize(par.latencies),
      failed: serial.failed + par.failed,
      ratioToCasSerial: cas ? round(serialRate / cas.serialOpsPerS, 2) : null,
      ratioToCasParallel: cas ? round(parRate / cas.parallelOpsPerS, 2) : null,
    };
  } finally {
    if (lease) {
      await store.client.leaseClient.leaseRevoke({ ID: lease }).catch(
        () => {},
      );
    }
    store.close();
  }
}

// ---------------------------------------------------------------- api

interface ApiResult {
  requests: number;
  concurrency: number;
  requestsPerS: number;
  latencyMs: Summary;
  /** Responses other than 201. */
  errors: number;
  statuses: Record<string, number>;
}

/** Serves `app` on a random loopback port; the server stops on cleanup. */
function serve(
  app: ReturnType<typeof createApp>,
  cleanup: Cleanup,
): { base: string; stop: () => Promise<void> } {
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: () => {},
  }, app.fetch);
  let stopped: Promise<void> | undefined;
  const stop = () => stopped ??= server.shutdown();
  cleanup.add("http server", stop);
  return { base: `http://127.0.0.1:${server.addr.port}`, stop };
}

async function benchApi(
  endpoint: string,
  requests: number,
  cleanup: Cleanup,
): Promise<ApiResult> {
  const store = storeFor(endpoint, "/bench/api");
  const { base, stop } = serve(createApp({ store }), cleanup);
  try {
    const statuses: Record<string, number> = {};
    const post = async (i: number) => {
      const res = await fetch(`${base}/v1/vms`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: `b${i}`, cpus: 1, memory: 128 }),
      });
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      return res.status === 201;
    };
    await timedPool(50, API_CLIENTS, post);
    for (const k of Object.keys(statuses)) delete statuses[k];
    progress(`api: ${requests} POST /v1/vms, ${API_CLIENTS} clients`);
    const r = await timedPool(requests, API_CLIENTS, post);
    return {
      requests,
      concurrency: API_CLIENTS,
      requestsPerS: rate(requests, r.elapsedMs),
      latencyMs: summarize(r.latencies),
      errors: r.failed,
      statuses,
    };
  } finally {
    await stop();
    store.close();
  }
}

// ---------------------------------------------------------------- place

interface PlaceResult {
  hosts: number;
  vms: number;
  concurrency: number;
  policy: Policy;
  hostCapacity: { cpus: number; memoryMiB: number };
  vmSize: { cpus: number; memoryMiB: number };
  placementsPerS: number;
  latencyMs: Summary;
  /** VMs placed inline (phase scheduled in the POST answer). */
  placed: number;
  /** VMs left pending (no fit, or inline placement gave up). */
  pending: number;
  /** Every etcd txn RPC during the run, lost compares included, per VM. */
  txnsPerVm: number;
  /** Txns whose compare failed (another placer won the host). */
  lostCompares: number;
  /** etcd revisions the run consumed, per VM: write transactions. */
  revisionsPerVm: number;
  /** Keys put or deleted by successful txns, per VM. */
  keysWrittenPerVm: number;
  /** etcd range reads during the run, per VM (refresh after a lost compare). */
  readsPerVm: number;
  /** Hosts with more reserved than their capacity: must be 0. */
  overcommitted: number;
  /** VMs per host after the run. */
  perHost: { min: number; max: number };
  casParallelOpsPerS: number | null;
  ratioToCasParallel: number | null;
}

async function benchPlace(
  endpoint: string,
  opts: Options,
  cas: CasResult | undefined,
): Promise<PlaceResult> {
  const store = storeFor(endpoint, "/bench/place");
  const vmSize = { cpus: 1, memoryMiB: 256 };
  // Room for every VM with about a fifth to spare.
  const perHost = Math.ceil(opts.placeVms * 1.25 / opts.placeHosts);
  const capacity = { cpus: perHost, memoryMiB: perHost * vmSize.memoryMiB };
  let lease: string | undefined;
  let cache: PlacementCache | undefined;
  try {
    lease = String(
      (await store.client.leaseClient.leaseGrant({ TTL: 600 })).ID,
    );
    progress(
      `place: registering ${opts.placeHosts} hosts of ${capacity.cpus} CPUs`,
    );
    const names = Array.from(
      { length: opts.placeHosts },
      (_, i) => `bh${String(i).padStart(3, "0")}`,
    );
    // etcd takes at most 128 operations per transaction.
    for (let i = 0; i < names.length; i += 50) {
      const txn = store.txn();
      for (const name of names.slice(i, i + 50)) {
        const host: Host = {
          name,
          capacity,
          addresses: [],
          os: "linux",
          drivers: ["sim"],
          state: "active",
          registeredAt: new Date().toISOString(),
        };
        const alive: Alive = {
          incarnation: lease,
          started: new Date().toISOString(),
          pid: Deno.pid,
          lease,
        };
        txn.put(keys.host(name), host)
          .put(keys.alive(name), alive, { lease });
      }
      await txn.commit();
    }
    cache = PlacementCache.start(store);
    await cache.ready;
    const app = createApp({
      store,
      config: {
        tasks: {
          maxAttempts: 5,
          backoffBaseMs: 500,
          backoffMaxMs: 30_000,
          taskTimeoutMs: 120_000,
        },
        scheduler: { policy: opts.policy },
      } as Parameters<typeof createApp>[0]["config"],
    });
    let placed = 0;
    let pending = 0;
    let placedAll = 0;
    const create = async (i: number) => {
      const res = await app.request("/v1/vms", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          name: `p${i}`,
          cpus: vmSize.cpus,
          memory: vmSize.memoryMiB,
        }),
      });
      const body = await res.json();
      if (res.status !== 201) {
        throw new Error(`POST /v1/vms: ${res.status} ${JSON.stringify(body)}`);
      }
      if (body.vm.status.phase === "scheduled") {
        placed++;
        placedAll++;
      } else pending++;
      return true;
    };
    const warm = 50;
    await timedPool(warm, 8, (i) => create(opts.placeVms + i));
    placed = pending = 0;
    const revision = async () =>
      BigInt((await store.list(keys.hosts, Host, { limit: 1 })).revision);
    const rev0 = await revision();
    const kv = store.client.kv;
    const txns = countCalls(kv, "txn", (req, res) => ({
      lost: res?.succeeded === false ? 1 : 0,
      keys: res?.succeeded ? (req.success?.length ?? 0) : 0,
    }));
    const reads = countCalls(kv, "range");
    progress(
      `place: ${opts.placeVms} VMs through POST /v1/vms, ${IN_FLIGHT} in flight, ` +
        `${opts.policy}`,
    );
    let r;
    try {
      r = await timedPool(opts.placeVms, IN_FLIGHT, create);
    } finally {
      txns.restore();
      reads.restore();
    }
    const rev1 = await revision();
    // Afterwards: no host overcommitted, every VM reserved exactly once.
    const allocs = await store.list(keys.allocs, Alloc);
    let overcommitted = 0;
    const counts: number[] = [];
    const seen = new Set<string>();
    let dup = 0;
    for (const a of allocs.items) {
      const u = allocUsage(a.value);
      if (u.cpus > capacity.cpus || u.memoryMiB > capacity.memoryMiB) {
        overcommitted++;
      }
      counts.push(u.vms);
      for (const id of Object.keys(a.value.vms)) {
        if (seen.has(id)) dup++;
        seen.add(id);
      }
    }
    while (counts.length < opts.placeHosts) counts.push(0);
    const total = opts.placeVms + warm;
    const vmDocs = await store.count(keys.vms);
    if (vmDocs !== total) {
      throw new Error(`place: ${vmDocs} VM documents, expected ${total}`);
    }
    if (dup) throw new Error(`place: ${dup} VMs reserved on two hosts`);
    if (seen.size !== placedAll) {
      throw new Error(
        `place: ${seen.size} reservations for ${placedAll} placed VMs`,
      );
    }
    const n = opts.placeVms;
    const rate_ = rate(placed, r.elapsedMs);
    const casPar = cas?.parallelOpsPerS ?? null;
    return {
      hosts: opts.placeHosts,
      vms: n,
      concurrency: IN_FLIGHT,
      policy: opts.policy,
      hostCapacity: capacity,
      vmSize,
      placementsPerS: rate_,
      latencyMs: summarize(r.latencies),
      placed,
      pending,
      txnsPerVm: round(txns.calls / n, 3),
      lostCompares: txns.sum.lost,
      revisionsPerVm: round(Number(rev1 - rev0) / n, 3),
      keysWrittenPerVm: round(txns.sum.keys / n, 2),
      readsPerVm: round(reads.calls / n, 3),
      overcommitted,
      perHost: { min: Math.min(...counts), max: Math.max(...counts) },
      casParallelOpsPerS: casPar,
      ratioToCasParallel: casPar ? round(rate_ / casPar, 2) : null,
    };
  } finally {
    await cache?.close();
    if (lease) {
      await store.client.leaseClient.leaseRevoke({ ID: lease }).catch(
        () => {},
      );
    }
    store.close();
  }
}

// ---------------------------------------------------------------- vm

interface VmSample {
  id: string;
  /** POST answered (201). */
  postMs: number;
  /** qemu daemonized (pidfile read), from the handle's `startedAt` (wall clock, 1 ms). */
  qemuStartedMs: number;
  /** The VM document in etcd shows phase running with a handle. */
  phaseRunningMs: number;
  /** QMP `query-status` answered "running". */
  qmpRunningMs: number;
  /** The serial log holds the guest's marker line. */
  guestReadyMs: number;
}

interface VmResult {
  count: number;
  warmup: number;
  qmpRunningMs: Summary;
  guestReadyMs: Summary;
  phaseRunningMs: Summary;
  qemuStartedMs: Summary;
  postMs: Summary;
  samples: VmSample[];
  /** From sending every DELETE to every VM document and qemu gone. */
  deleteAllMs: number;
}

async function vmCreateToRunning(
  cluster: Cluster,
  base: string,
  name: string,
  created: string[],
): Promise<VmSample> {
  const wall0 = Date.now();
  const t0 = performance.now();
  const since = () => round(performance.now() - t0);
  const res = await fetch(`${base}/v1/vms`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, cpus: 1, memory: 128 }),
  });
  const body = await res.json();
  if (res.status !== 201) {
    throw new Error(`POST /v1/vms: ${res.status} ${JSON.stringify(body)}`);
  }
  const postMs = since();
  const id = body.vm.id as string;
  created.push(id);
  type Handle = { qmp: string; serial: string; startedAt: string };
  let handle: Handle | undefined;
  let phaseRunningMs = NaN;
  let qmpRunningMs = NaN;
  const end = performance.now() + VM_TIMEOUT_MS;
  let lastPhase = "";
  while (performance.now() < end) {
    if (!handle) {
      const vm = (await cluster.store.get(keys.vm(id), Vm))?.value;
      lastPhase = vm?.status.phase ?? "gone";
      if (vm?.status.phase === "failed" || vm?.status.phase === "crashed") {
        throw new Error(
          `VM ${id} is ${vm.status.phase}: ${vm.status.reason ?? "?"}`,
        );
      }
      if (vm?.status.phase === "running" && vm.status.handle) {
        phaseRunningMs = since();
        handle = vm.status.handle as unknown as Handle;
      }
    }
    if (handle && Number.isNaN(qmpRunningMs)) {
      const s = await queryStatus(handle.qmp, { timeoutMs: 2000 }).catch((
        err,
      ) => String(err));
      lastPhase = `qmp: ${s}`;
      if (s === "running") qmpRunningMs = since();
    }
    if (!Number.isNaN(qmpRunningMs)) {
      const serial = await Deno.readTextFile(handle!.serial).catch(() => "");
      if (serial.includes(MARKER)) {
        return {
          id,
          postMs,
          qemuStartedMs: Date.parse(handle!.startedAt) - wall0,
          phaseRunningMs,
          qmpRunningMs,
          guestReadyMs: since(),
        };
      }
      lastPhase = "waiting for guest marker";
    }
    await sleep(POLL_MS);
  }
  throw new Error(
    `VM ${id} not ready after ${VM_TIMEOUT_MS} ms (last seen: ${lastPhase})`,
  );
}

async function benchVm(
  opts: Options,
  cleanup: Cleanup,
): Promise<VmResult> {
  progress("vm: starting etcd and a worker (qemu under TCG)");
  const cluster = await startCluster();
  cleanup.add("cluster (worker, qemu, etcd, temp dir)", () => cluster.stop());
  const total = opts.warmupVms + opts.vms;
  const workerLog = async () =>
    `\n--- worker log tail ---\n${
      (await cluster.workers.get("bench1")?.log() ?? "").slice(-3000)
    }`;
  // Room for every VM at once: they are deleted together at the end.
  await cluster.addWorker({
    name: "bench1",
    cpus: total + 1,
    memoryMiB: 256 + total * 128,
  });
  await waitFor(
    "the worker to register",
    () => cluster.store.get(keys.alive("bench1"), Alive),
    30_000,
  ).catch(async (err) => {
    throw new Error(`${err.message}${await workerLog()}`);
  });
  const { base, stop } = serve(createApp({ store: cluster.store }), cleanup);
  const ids: string[] = [];
  const samples: VmSample[] = [];
  try {
    for (let i = 0; i < total; i++) {
      const warm = i < opts.warmupVms;
      const s = await vmCreateToRunning(cluster, base, `bench-${i}`, ids);
      progress(
        `vm ${i + 1}/${total}${warm ? " (warm-up, not counted)" : ""}: ` +
          `qmp running ${s.qmpRunningMs} ms, guest ready ${s.guestReadyMs} ms`,
      );
      if (!warm) samples.push(s);
    }
  } catch (err) {
    throw new Error(`${(err as Error).message}${await workerLog()}`);
  }
  progress(`vm: deleting ${ids.length} VMs through the API`);
  const t = performance.now();
  for (const id of ids) {
    const r = await fetch(`${base}/v1/vms/${id}`, { method: "DELETE" });
    const body = await r.text();
    if (r.status !== 202 && r.status !== 200) {
      throw new Error(`DELETE /v1/vms/${id}: ${r.status} ${body}`);
    }
  }
  await waitFor(
    "every VM document and qemu process gone",
    async () => {
      for (const id of ids) {
        if (await cluster.store.get(keys.vm(id), Vm)) return false;
      }
      return (await qemuPids(cluster.dir)).length === 0;
    },
    60_000,
    POLL_MS,
  ).catch(async (err) => {
    throw new Error(`${err.message}${await workerLog()}`);
  });
  const deleteAllMs = round(performance.now() - t);
  await stop();
  const pick = (f: (s: VmSample) => number) => summarize(samples.map(f));
  return {
    count: samples.length,
    warmup: opts.warmupVms,
    qmpRunningMs: pick((s) => s.qmpRunningMs),
    guestReadyMs: pick((s) => s.guestReadyMs),
    phaseRunningMs: pick((s) => s.phaseRunningMs),
    qemuStartedMs: pick((s) => s.qemuStartedMs),
    postMs: pick((s) => s.postMs),
    samples,
    deleteAllMs,
  };
}

// ---------------------------------------------------------------- main

async function etcdVersion(): Promise<string> {
  try {
    const out = await new Deno.Command("etcd", {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).match(
      /etcd Version:\s*(\S+)/,
    )?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

function rows(r: Results): Row[] {
  const out: Row[] = [];
  const { cas, claim: cl, api, place, vm } = r;
  for (const f of r.failover ?? []) {
    for (const p of ["p50", "p95"] as const) {
      out.push({
        name: `failover, TTL ${f.ttlSeconds} s, ${p}`,
        value: f.failoverMs[p],
        unit: "ms",
        notes:
          `SIGKILL of a host -> its VMs QMP running elsewhere; ${f.kills} kills, ${f.failoverMs.n} VMs, margin ${f.marginMs} ms`,
      });
    }
  }
  if (r.failoverSim) out.push(...failoverSimRows(r.failoverSim));
  if (cas) {
    out.push({
      name: "etcd CAS txn, 1 in flight",
      value: cas.serialOpsPerS,
      unit: "ops/s",
      notes: `n=${cas.n}, p50 ${cas.serialLatencyMs.p50} ms`,
    }, {
      name: `etcd CAS txn, ${cas.concurrency} in flight`,
      value: cas.parallelOpsPerS,
      unit: "ops/s",
      notes: `n=${cas.n}, p50 ${cas.parallelLatencyMs.p50} ms`,
    });
  }
  if (cl) {
    const ratio = (x: number | null) => x === null ? "" : `, ${x} x CAS rate`;
    out.push({
      name: "task claim+complete, 1 in flight",
      value: cl.serialTasksPerS,
      unit: "tasks/s",
      notes: `n=${cl.n}, p50 ${cl.serialLatencyMs.p50} ms${
        ratio(cl.ratioToCasSerial)
      }`,
    }, {
      name: `task claim+complete, ${cl.concurrency} in flight`,
      value: cl.parallelTasksPerS,
      unit: "tasks/s",
      notes: `n=${cl.n}, p50 ${cl.parallelLatencyMs.p50} ms${
        ratio(cl.ratioToCasParallel)
      }`,
    });
    if (cl.failed) {
      out.push({
        name: "task claim+complete failures",
        value: cl.failed,
        unit: "tasks",
        notes: "claim() null or complete() false",
      });
    }
  }
  if (api) {
    const n = `${api.requests} req, ${api.concurrency} clients, HTTP`;
    out.push(
      {
        name: "API POST /v1/vms p50",
        value: api.latencyMs.p50,
        unit: "ms",
        notes: n,
      },
      {
        name: "API POST /v1/vms p99",
        value: api.latencyMs.p99,
        unit: "ms",
        notes: `max ${api.latencyMs.max} ms`,
      },
      {
        name: "API POST /v1/vms throughput",
        value: api.requestsPerS,
        unit: "req/s",
        notes: api.errors
          ? `${api.errors} errors: ${JSON.stringify(api.statuses)}`
          : "all 201",
      },
    );
  }
  if (place) {
    const n = `${place.vms} VMs on ${place.hosts} hosts, ` +
      `${place.concurrency} in flight, ${place.policy}`;
    const vs = place.ratioToCasParallel === null
      ? ""
      : `, ${place.ratioToCasParallel} x CAS rate (${place.casParallelOpsPerS}/s)`;
    out.push(
      {
        name: "placements (inline at POST /v1/vms)",
        value: place.placementsPerS,
        unit: "VMs/s",
        notes: `${n}${vs}`,
      },
      {
        name: "placement POST p50 / p99",
        value: `${place.latencyMs.p50} / ${place.latencyMs.p99}`,
        unit: "ms",
        notes: `app.request, max ${place.latencyMs.max} ms`,
      },
      {
        name: "etcd txns per VM placed",
        value: place.txnsPerVm,
        unit: "txn",
        notes: `${place.lostCompares} lost alloc compares`,
      },
      {
        name: "etcd writes per VM placed",
        value: place.revisionsPerVm,
        unit: "rev",
        notes: `revisions consumed; ${place.keysWrittenPerVm} keys per VM`,
      },
      {
        name: "etcd reads per VM placed",
        value: place.readsPerVm,
        unit: "range",
        notes: "candidates come from the watch cache",
      },
      {
        name: "placement result",
        value: place.overcommitted,
        unit: "overcommitted hosts",
        notes: `${place.placed} placed, ${place.pending} pending; ` +
          `${place.perHost.min}-${place.perHost.max} VMs per host`,
      },
    );
  }
  if (vm) {
    const n = `n=${vm.count}, 1 CPU 128 MiB, TCG`;
    const pair = (name: string, s: Summary, notes: string) => [
      { name: `${name} p50`, value: s.p50, unit: "ms", notes },
      {
        name: `${name} p95`,
        value: s.p95,
        unit: "ms",
        notes: `min ${s.min}, max ${s.max}`,
      },
    ];
    out.push(
      ...pair("VM POST -> QMP running", vm.qmpRunningMs, n),
      ...pair(
        "VM POST -> guest ready",
        vm.guestReadyMs,
        `serial marker ${MARKER}`,
      ),
      {
        name: "VM POST -> qemu started p50",
        value: vm.qemuStartedMs.p50,
        unit: "ms",
        notes: "handle.startedAt: qemu daemonized, before QMP wait",
      },
      {
        name: "VM POST -> phase running p50",
        value: vm.phaseRunningMs.p50,
        unit: "ms",
        notes: "etcd vm doc, polled every 20 ms",
      },
      {
        name: `VM delete all ${vm.count + vm.warmup} -> gone`,
        value: vm.deleteAllMs,
        unit: "ms",
        notes: "DELETE each, until docs and qemu gone",
      },
    );
  }
  const net = r.net;
  if (net) {
    const n = `${net.networks} networks, 1 port each`;
    out.push(
      {
        name: "net sync from nothing",
        value: net.coldMs,
        unit: "ms",
        notes: `${n}: bridges, VXLANs, taps, 1 nft txn, radvd; ` +
          `${net.coldPerPortMs} ms per network`,
      },
      {
        name: "net re-sync, nothing changed p50",
        value: net.noopMs.p50,
        unit: "ms",
        notes: `${n}; worker start and 10 s repair`,
      },
      {
        name: "net add 1 network+port p50",
        value: net.addMs.p50,
        unit: "ms",
        notes: `to ${n}; ${
          round(net.addMs.p50 / net.noopMs.p50, 2)
        } x the no-op sync`,
      },
      {
        name: "net remove 1 network+port p50",
        value: net.removeMs.p50,
        unit: "ms",
        notes: `deleting links waits for the kernel`,
      },
      {
        name: "net remove all",
        value: net.emptyMs,
        unit: "ms",
        notes: n,
      },
      {
        name: "NIC hot-plug (QMP) p50",
        value: net.plugMs.p50,
        unit: "ms",
        notes: `netdev_add + device_add; max ${net.plugMs.max}`,
      },
      {
        name: "NIC hot-unplug p50",
        value: net.unplugMs.p50,
        unit: "ms",
        notes:
          `device_del until the guest released it (ACPI, TCG); max ${net.unplugMs.max}`,
      },
    );
  }
  return out;
}

interface Results {
  bench: "ucloud";
  version: 1;
  at: string;
  quick: boolean;
  phases: Phase[];
  env: {
    cpus: number;
    deno: string;
    etcd: string;
    os: string;
    /** 1-minute load average at the start: other work skews the figures. */
    loadAvg1: number | null;
  };
  durationS?: number;
  cas?: CasResult;
  claim?: ClaimResult;
  api?: ApiResult;
  place?: PlaceResult;
  vm?: VmResult;
  failover?: FailoverRun[];
  failoverSim?: FailoverSimResult;
  net?: NetResult;
}

async function main(): Promise<number> {
  const opts = parseArgs(Deno.args);
  const started = performance.now();
  const cleanup = new Cleanup();
  let exiting = false;
  const bail = async (why: string, code: number) => {
    if (exiting) return;
    exiting = true;
    console.error(`bench: ${why}; cleaning up`);
    await cleanup.run();
    Deno.exit(code);
  };
  const onSignal = () => bail("interrupted", 130);
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const watchdogMs = opts.quick ? 180_000 : 900_000;
  const watchdog = setTimeout(
    () => bail(`watchdog: still running after ${watchdogMs / 1000} s`, 1),
    watchdogMs,
  );

  const results: Results = {
    bench: "ucloud",
    version: 1,
    at: new Date().toISOString(),
    quick: opts.quick,
    phases: PHASES.filter((p) => opts.only.has(p)),
    env: {
      cpus: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
      etcd: await etcdVersion(),
      os: `${Deno.build.os} ${Deno.osRelease()}`,
      loadAvg1: round(Deno.loadavg()[0], 2),
    },
  };
  try {
    if (
      opts.only.has("cas") || opts.only.has("claim") ||
      opts.only.has("api") || opts.only.has("place")
    ) {
      const dir = await Deno.makeTempDir({ prefix: "uc-bench-" });
      cleanup.add("temp dir", () => Deno.remove(dir, { recursive: true }));
      const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
      cleanup.add("etcd", () => etcd.stop("SIGKILL"));
      progress(`etcd ${results.env.etcd} on ${etcd.endpoint}`);
      if (opts.only.has("cas")) {
        results.cas = await benchCas(etcd.endpoint, opts.n);
      }
      if (opts.only.has("claim")) {
        results.claim = await benchClaim(etcd.endpoint, opts.n, results.cas);
      }
      if (opts.only.has("api")) {
        results.api = await benchApi(etcd.endpoint, opts.apiRequests, cleanup);
      }
      if (opts.only.has("place")) {
        results.place = await benchPlace(etcd.endpoint, opts, results.cas);
      }
      await cleanup.run();
    }
    if (opts.only.has("vm")) results.vm = await benchVm(opts, cleanup);
    if (opts.only.has("failover")) {
      // Default TTL and the shortest the embedded etcd allows (1 s).
      const plan = opts.quick ? [[1, 1]] : [[3, 10], [1, 10]];
      results.failover = [];
      for (const [ttl, kills] of plan) {
        progress(`failover: ${kills} host kills with lease TTL ${ttl} s`);
        results.failover.push(await failoverRun(ttl, kills));
      }
    }
    if (opts.only.has("failover-sim")) {
      const [vms, kills] = opts.quick ? [5, 1] : [50, 10];
      progress(`failover-sim: ${kills} kills of a host with ${vms} sim VMs`);
      results.failoverSim = await failoverSimRun(
        { vms, kills, gapMs: opts.gapMs },
        cleanup,
      );
    }
    if (opts.only.has("net")) {
      progress(`net: driver sync with ${NET_NETWORKS} networks, NIC hot-plug`);
      results.net = await benchNet(opts.quick ? 10 : NET_NETWORKS);
    }
  } finally {
    await cleanup.run();
    clearTimeout(watchdog);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  results.durationS = round((performance.now() - started) / 1000);

  console.log(table(rows(results)));
  console.log(
    `total ${results.durationS} s; load average at start ${results.env.loadAvg1} ` +
      `on ${results.env.cpus} CPUs`,
  );
  const json = JSON.stringify(results);
  console.log(json);
  if (opts.write) {
    await Deno.writeTextFile("bench-results.json", json + "\n");
    progress(`wrote ${Deno.cwd()}/bench-results.json`);
  }
  const failed = (results.cas?.failed ?? 0) + (results.claim?.failed ?? 0) +
    (results.api?.errors ?? 0) + (results.place?.overcommitted ?? 0);
  return failed ? 1 : 0;
}

if (import.meta.main) {
  let code = 1;
  try {
    code = await main();
  } catch (err) {
    console.error(`bench: failed: ${err instanceof Error ? err.stack : err}`);
  }
  // The etcd client may keep timers alive; every resource is already closed.
  Deno.exit(code);
}
