/**
 * The scale benchmark (issue 13): does the idle cost of the control plane
 * grow with the number of VMs? `hosts` simulated hosts, each a real worker
 * process (`workers/main.ts`, sim driver, no host networking: the sim
 * driver needs none), the API as its own process, one etcd. For each count
 * of `vmsPerHost` (ascending, in the same cluster) VMs are added through
 * the API's HTTP port until every host holds about that many, all running
 * and no task left; after a short settle the cluster is left alone for
 * `idleSeconds` and etcd's own counters (`/metrics`: gRPC messages by
 * method, bytes sent and received, MVCC range/put/txn/delete, watchers)
 * are read before and after: per second and per host. The API's and the
 * workers' resident memory (VmRSS) and CPU come from /proc. Then
 * `churnSeconds` of VM create/delete cycles (`inFlight` at a time) on top
 * of the largest count, measured the same way. Idle figures that do not
 * depend on VMs per host are the goal: the `growth` rows compare the
 * largest count with the smallest.
 *
 * Why real VMs: the VMs are created through the API and started by the
 * workers, one `sleep` process each (drivers/sim). A sim process costs
 * ~150 KiB and ~2 ms to start (measured: 500 in 1 s, 76 MiB), so 10,000
 * are ~1.5 GiB: cheap enough, and every VM then is what a worker really
 * keeps (a handle it inspects, a document it owns), where documents
 * written straight into etcd would be taken for crashed VMs and restarted.
 * During the windows the bench itself sends etcd nothing but the churn's
 * polls of its own VMs (counted: `benchPolls`); /metrics is plain HTTP,
 * not gRPC, and not counted by etcd's gRPC counters.
 *
 * Memory: a worker process is ~60-100 MiB, so 50 hosts are ~4-5 GiB (the
 * machine this was written on has 24 GiB).
 *
 * Usage: `deno run -A scripts/bench/main.ts --only=scale
 * [--scale-hosts=50] [--scale-vms=50,200] [--idle-s=60] [--churn-s=30]`.
 */
import { keys } from "../../core/keys.ts";
import { Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { startCluster, waitFor } from "../../tests/helpers/cluster.ts";
import {
  cpuSeconds,
  type EtcdRates,
  rates,
  rssMiB,
  scrape,
} from "./etcd_metrics.ts";
import {
  type ApiProc,
  createVms,
  deleteVm,
  hostNames,
  postVm,
  startApi,
  startHosts,
  waitSettled,
} from "./scale_cluster.ts";
import { type Cleanup, progress, round, type Row, sleep } from "./util.ts";

/** Options of {@linkcode scaleRun}. */
export interface ScaleOptions {
  hosts: number;
  /** VM counts per host, one idle window each, ascending. */
  vmsPerHost: number[];
  idleSeconds: number;
  churnSeconds: number;
  /** Churn cycles at a time (default 8). */
  inFlight?: number;
  /** Quiet time after the VMs settle, before an idle window (default 5 s). */
  settleMs?: number;
}

/** One measured window: etcd's rates per host, CPU and memory. */
export interface ScaleWindow {
  etcd: EtcdRates;
  /** CPU used per second (1 = one core): a worker on average, API, etcd. */
  workerCpu: number;
  apiCpu: number;
  etcdCpu: number;
  /** VmRSS in MiB at the end: the API, the first host's worker, max, etcd. */
  apiMiB: number;
  workerMiB: number;
  workerMaxMiB: number;
  etcdMiB: number;
}

/** One VM count per host and its idle window. */
export interface ScaleStage {
  vmsPerHost: number;
  vms: number;
  /** VMs on the emptiest and fullest host. */
  hostMin: number;
  hostMax: number;
  /** Seconds to create this stage's VMs and see them all run. */
  fillSeconds: number;
  idle: ScaleWindow;
}

/** The churn window on top of the largest stage. */
export interface ScaleChurn extends ScaleWindow {
  cycles: number;
  cyclesPerS: number;
  /** The bench's own reads of its VMs, per second and host (in `etcd`). */
  benchPolls: number;
}

/** Result of {@linkcode scaleRun}. */
export interface ScaleResult {
  hosts: number;
  idleSeconds: number;
  stages: ScaleStage[];
  churn?: ScaleChurn;
  /** Largest stage's idle figure over the smallest's (1: no growth). */
  growth: { requests: number; sentBytes: number; workerCpu: number };
}

const POLL_MS = 200;

/** Runs every stage and the churn in one cluster, then tears it down. */
export async function scaleRun(
  opts: ScaleOptions,
  cleanup?: Cleanup,
): Promise<ScaleResult> {
  const inFlight = opts.inFlight ?? 8;
  const settleMs = opts.settleMs ?? 5000;
  const stagesAsked = [...opts.vmsPerHost].sort((a, b) => a - b);
  const c = await startCluster({ leaseTtlSeconds: 3, guest: false });
  c.env.UCLOUD_LEASE_MARGIN_MS = "1000";
  c.env.UCLOUD_DRIVER = "sim";
  let api: ApiProc | undefined;
  let down: Promise<void> | undefined;
  const teardown = () =>
    down ??= (async () => {
      await api?.stop();
      await c.stop();
    })();
  cleanup?.add("scale cluster", teardown);
  const names = hostNames(opts.hosts);
  try {
    api = await startApi(c);
    progress(`scale: API pid ${api.pid}; starting ${opts.hosts} workers`);
    await startHosts(c, names, stagesAsked.at(-1)! + inFlight + 2);
    const pids = () => ({
      api: api!.pid,
      etcd: c.etcd.pid,
      workers: names.map((n) => c.workers.get(n)!.pid!),
    });
    const stages: ScaleStage[] = [];
    let vms = 0;
    for (const perHost of stagesAsked) {
      const target = perHost * opts.hosts;
      progress(`scale: filling to ${perHost} VMs per host (${target})`);
      const t0 = performance.now();
      await createVms(api.base, vms, target);
      vms = target;
      const spread = await waitSettled(c, vms, 300_000 + 100 * vms);
      const fillSeconds = (performance.now() - t0) / 1000;
      await sleep(settleMs);
      progress(`scale: idle ${opts.idleSeconds} s at ${perHost} VMs per host`);
      const idle = await measure(
        c.etcd.endpoint,
        pids(),
        opts.hosts,
        () => sleep(opts.idleSeconds * 1000),
      );
      stages.push({
        vmsPerHost: perHost,
        vms,
        hostMin: Math.min(...names.map((n) => spread.get(n) ?? 0)),
        hostMax: Math.max(...names.map((n) => spread.get(n) ?? 0)),
        fillSeconds: round(fillSeconds),
        idle,
      });
    }
    let churn: ScaleChurn | undefined;
    if (opts.churnSeconds > 0) {
      progress(`scale: churn for ${opts.churnSeconds} s, ${inFlight} at once`);
      const counts = { cycles: 0, polls: 0 };
      const w = await measure(
        c.etcd.endpoint,
        pids(),
        opts.hosts,
        () => churnFor(api!.base, c.store, opts.churnSeconds, inFlight, counts),
      );
      churn = {
        ...w,
        cycles: counts.cycles,
        cyclesPerS: round(counts.cycles / w.etcd.seconds, 2),
        benchPolls: counts.polls / w.etcd.seconds / opts.hosts,
      };
    }
    const [a, b] = [stages[0].idle, stages.at(-1)!.idle];
    return {
      hosts: opts.hosts,
      idleSeconds: opts.idleSeconds,
      stages,
      churn,
      growth: {
        requests: round(b.etcd.requests / a.etcd.requests, 2),
        sentBytes: round(b.etcd.sentBytes / a.etcd.sentBytes, 2),
        workerCpu: round(b.workerCpu / a.workerCpu, 2),
      },
    };
  } catch (err) {
    await c.printLogs(2000);
    throw err;
  } finally {
    await teardown();
  }
}

/** etcd's counters, CPU and memory around `during`. */
async function measure(
  endpoint: string,
  pids: { api: number; etcd: number; workers: number[] },
  hosts: number,
  during: () => Promise<void>,
): Promise<ScaleWindow> {
  const cpu = async () => ({
    api: await cpuSeconds(pids.api),
    etcd: await cpuSeconds(pids.etcd),
    workers: (await Promise.all(pids.workers.map(cpuSeconds)))
      .reduce((s, x) => s + x, 0),
  });
  const cpu0 = await cpu();
  const a = await scrape(endpoint);
  await during();
  const b = await scrape(endpoint);
  const cpu1 = await cpu();
  const s = (b.at - a.at) / 1000;
  const rss = await Promise.all(pids.workers.map(rssMiB));
  return {
    etcd: rates(a, b, hosts),
    workerCpu: (cpu1.workers - cpu0.workers) / s / pids.workers.length,
    apiCpu: (cpu1.api - cpu0.api) / s,
    etcdCpu: (cpu1.etcd - cpu0.etcd) / s,
    apiMiB: await rssMiB(pids.api),
    workerMiB: rss[0],
    workerMaxMiB: Math.max(...rss),
    etcdMiB: await rssMiB(pids.etcd),
  };
}

/**
 * Create/delete cycles through the API, `inFlight` at a time, started
 * until `seconds` have passed; each waits for running, then for gone.
 */
async function churnFor(
  base: string,
  store: Store,
  seconds: number,
  inFlight: number,
  counts: { cycles: number; polls: number },
): Promise<void> {
  const end = performance.now() + seconds * 1000;
  const phase = async (id: string) => {
    counts.polls++;
    return (await store.get(keys.vm(id), Vm))?.value.status.phase ?? "gone";
  };
  let n = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < end) {
      const id = await postVm(base, `churn-${n++}`);
      await waitFor(
        `${id} running`,
        async () => {
          const p = await phase(id);
          if (p === "error" || p === "failed") throw new Error(`${id} ${p}`);
          return p === "running";
        },
        120_000,
        POLL_MS,
      );
      await deleteVm(base, id);
      await waitFor(
        `${id} gone`,
        async () => await phase(id) === "gone",
        120_000,
        POLL_MS,
      );
      counts.cycles++;
    }
  }));
}

/** Table rows: one group per stage, the churn, the growth. */
export function scaleRows(r: ScaleResult): Row[] {
  const kib = (b: number) => round(b / 1024, 1);
  const methods = (e: EtcdRates) =>
    Object.entries(e.byMethod).sort((x, y) => y[1] - x[1]).slice(0, 5)
      .map(([m, v]) => `${m} ${round(v, 2)}`).join(", ");
  const group = (at: string, w: ScaleWindow, extra: string): Row[] => [
    {
      name: `${at}: etcd requests`,
      value: round(w.etcd.requests, 2),
      unit: "/s/host",
      notes: `${methods(w.etcd)}${extra}`,
    },
    {
      name: `${at}: etcd sent`,
      value: kib(w.etcd.sentBytes),
      unit: "KiB/s/host",
      notes: `received ${kib(w.etcd.receivedBytes)} KiB/s/host; mvcc range ` +
        `${round(w.etcd.range, 2)}, txn ${round(w.etcd.txn, 2)}, put ` +
        `${round(w.etcd.put, 2)} /s/host; ${w.etcd.watchers} watchers, ` +
        `${w.etcd.keys} keys`,
    },
    {
      name: `${at}: worker CPU`,
      value: round(w.workerCpu * 100, 1),
      unit: "% of a core",
      notes: `mean of ${r.hosts} workers; API ${round(w.apiCpu * 100, 1)} %, ` +
        `etcd ${round(w.etcdCpu * 100, 1)} %`,
    },
    {
      name: `${at}: memory`,
      value: round(w.workerMiB),
      unit: "MiB worker",
      notes: `RSS of the first host's worker (max of all ${
        round(w.workerMaxMiB)
      }); API process ${round(w.apiMiB)} MiB, etcd ${round(w.etcdMiB)} MiB`,
    },
  ];
  const rows = r.stages.flatMap((s) =>
    group(
      `scale idle ${r.hosts} hosts x ${s.vmsPerHost} VMs`,
      s.idle,
      `; ${s.vms} VMs (${s.hostMin}-${s.hostMax} a host, filled in ` +
        `${s.fillSeconds} s), ${round(s.idle.etcd.seconds)} s window`,
    )
  );
  if (r.churn) {
    rows.push(...group(
      `scale churn ${r.hosts} hosts`,
      r.churn,
      `; ${r.churn.cycles} create/delete cycles, ${r.churn.cyclesPerS}/s; ` +
        `of the requests ${round(r.churn.benchPolls, 2)}/s/host are the ` +
        `bench's polls`,
    ));
  }
  const [a, b] = [r.stages[0], r.stages.at(-1)!];
  rows.push({
    name: `scale idle growth ${a.vmsPerHost} -> ${b.vmsPerHost} VMs/host`,
    value: r.growth.sentBytes,
    unit: "x bytes sent",
    notes:
      `requests x${r.growth.requests}, worker CPU x${r.growth.workerCpu}; ` +
      `goal 1 (idle cost independent of VMs)`,
  });
  return rows;
}
