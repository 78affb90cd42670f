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
 * Sizes and lease (measured on a 2-core, 24 GiB machine shared with
 * other test suites, load 20-70): a host is two Deno processes, worker
 * (100-140 MiB at 5-20 VMs) and fencer (75 MiB), so 50 hosts are ~5 GiB
 * at start: memory is not the limit, CPU is. 50 hosts never reached
 * the first idle window there: starting them (five at a time, each five
 * alive before the next) starved etcd and the keep-alives, hosts lost
 * their leases and failed over with no VM on them (3 s lease and 10 s),
 * or the API's first creates passed etcd's 2 s deadline. 20 hosts ran
 * clean, so the default is 20 hosts (`--scale-hosts=50`
 * for the issue's size on a quiet machine), and the lease TTL is 10 s
 * (`--scale-ttl`): the simulated hosts share two cores, a 3 s lease would
 * measure the machine's scheduler. Keep-alives are per host (one every
 * TTL/3), not per VM, so the TTL does not change the comparison. Hosts
 * that lost their lease during a window are counted (`hostsRejoined`):
 * more than 0 means that window's figures are disturbed.
 *
 * Usage: `deno run -A scripts/bench/main.ts --only=scale
 * [--scale-hosts=20] [--scale-vms=50,200] [--idle-s=60] [--churn-s=30]
 * [--scale-ttl=10]`.
 */
import { fencerPidFile } from "../../workers/fence.ts";
import { type Cluster, startCluster } from "../../tests/helpers/cluster.ts";
import {
  cpuSeconds,
  type EtcdRates,
  rates,
  rssMiB,
  scrape,
} from "./etcd_metrics.ts";
import {
  type ApiProc,
  churnFor,
  createVms,
  hostNames,
  incarnations,
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
  /** Lease TTL of the workers, s (default 10; see the module comment). */
  ttlSeconds?: number;
}

/** One measured window: etcd's rates per host, CPU and memory. */
export interface ScaleWindow {
  etcd: EtcdRates;
  /**
   * CPU used per second (1 = one core): a worker and a fencer on average,
   * the API, etcd.
   */
  workerCpu: number;
  fencerCpu: number;
  apiCpu: number;
  etcdCpu: number;
  /** VmRSS in MiB at the end: the API, the first host's worker, max, etcd. */
  apiMiB: number;
  workerMiB: number;
  workerMaxMiB: number;
  /** VmRSS of the first host's fencer process (drivers' kill switch). */
  fencerMiB: number;
  etcdMiB: number;
  /**
   * Hosts whose worker lost its lease during the window (new incarnation
   * or none): more than 0 means an overloaded machine, figures disturbed.
   */
  hostsRejoined: number;
}

/** One VM count per host and its idle window. */
export interface ScaleStage {
  vmsPerHost: number;
  vms: number;
  /** VMs on the emptiest and fullest host. */
  hostMin: number;
  hostMax: number;
  /** VMs running at the end of the wait: less than `vms`, not settled. */
  running: number;
  /** Seconds to create this stage's VMs and see them all run. */
  fillSeconds: number;
  /** Absent when the stage did not settle (no idle window, no churn). */
  idle?: ScaleWindow;
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
  /**
   * Largest stage's idle figure over the smallest's (1: no growth; null:
   * from nothing to something, or a stage did not settle).
   */
  growth: {
    requests: number | null;
    sentBytes: number | null;
    workerCpu: number | null;
  };
}

/** Runs every stage and the churn in one cluster, then tears it down. */
export async function scaleRun(
  opts: ScaleOptions,
  cleanup?: Cleanup,
): Promise<ScaleResult> {
  const inFlight = opts.inFlight ?? 8;
  const settleMs = opts.settleMs ?? 5000;
  const stagesAsked = [...opts.vmsPerHost].sort((a, b) => a - b);
  const ttl = opts.ttlSeconds ?? 10;
  const c = await startCluster({ leaseTtlSeconds: ttl, guest: false });
  c.env.UCLOUD_LEASE_MARGIN_MS = String(Math.floor(ttl * 1000 / 3));
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
    const pids = async () => ({
      api: api!.pid,
      etcd: c.etcd.pid,
      workers: names.map((n) => c.workers.get(n)!.pid!),
      fencers: await Promise.all(names.map(async (n) =>
        Number(
          await Deno.readTextFile(fencerPidFile(c.workers.get(n)!.runDir)),
        )
      )),
    });
    const stages: ScaleStage[] = [];
    let vms = 0;
    for (const perHost of stagesAsked) {
      const target = perHost * opts.hosts;
      progress(`scale: filling to ${perHost} VMs per host (${target})`);
      const t0 = performance.now();
      await createVms(api.base, vms, target);
      vms = target;
      const got = await waitSettled(c, vms, 300_000 + 100 * vms);
      const fillSeconds = (performance.now() - t0) / 1000;
      const stage: ScaleStage = {
        vmsPerHost: perHost,
        vms,
        running: got.running,
        hostMin: Math.min(...names.map((n) => got.perHost.get(n) ?? 0)),
        hostMax: Math.max(...names.map((n) => got.perHost.get(n) ?? 0)),
        fillSeconds: round(fillSeconds),
      };
      stages.push(stage);
      if (!got.settled) {
        progress(`scale: ${got.running}/${vms} VMs running: did not settle`);
        await c.printLogs(1000);
        break;
      }
      await sleep(settleMs);
      progress(`scale: idle ${opts.idleSeconds} s at ${perHost} VMs per host`);
      stage.idle = await measure(
        c,
        await pids(),
        opts.hosts,
        () => sleep(opts.idleSeconds * 1000),
      );
    }
    const measured = stages.filter((s) => s.idle).map((s) => s.idle!);
    let churn: ScaleChurn | undefined;
    if (opts.churnSeconds > 0 && measured.length === stages.length) {
      progress(`scale: churn for ${opts.churnSeconds} s, ${inFlight} at once`);
      const counts = { cycles: 0, polls: 0 };
      const w = await measure(
        c,
        await pids(),
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
    // Only between settled stages: a size that did not settle has no figure.
    const [a, b] = measured.length === stages.length
      ? [measured[0], measured.at(-1)!]
      : [undefined, undefined];
    return {
      hosts: opts.hosts,
      idleSeconds: opts.idleSeconds,
      stages,
      churn,
      growth: {
        requests: a && b ? ratio(b.etcd.requests, a.etcd.requests) : null,
        sentBytes: a && b ? ratio(b.etcd.sentBytes, a.etcd.sentBytes) : null,
        workerCpu: a && b ? ratio(b.workerCpu, a.workerCpu) : null,
      },
    };
  } catch (err) {
    await c.printLogs(2000);
    throw err;
  } finally {
    await teardown();
  }
}

/** `b / a`, rounded; 1 when both are 0, null when only `a` is. */
function ratio(b: number, a: number): number | null {
  if (a > 0) return round(b / a, 2);
  return b > 0 ? null : 1;
}

/** etcd's counters, CPU and memory around `during`. */
async function measure(
  c: Cluster,
  pids: { api: number; etcd: number; workers: number[]; fencers: number[] },
  hosts: number,
  during: () => Promise<void>,
): Promise<ScaleWindow> {
  const sum = async (ps: number[]) =>
    (await Promise.all(ps.map(cpuSeconds))).reduce((s, x) => s + x, 0);
  const cpu = async () => ({
    api: await cpuSeconds(pids.api),
    etcd: await cpuSeconds(pids.etcd),
    workers: await sum(pids.workers),
    fencers: await sum(pids.fencers),
  });
  const inc = await incarnations(c);
  const cpu0 = await cpu();
  const a = await scrape(c.etcd.endpoint);
  await during();
  const b = await scrape(c.etcd.endpoint);
  const cpu1 = await cpu();
  const after = await incarnations(c);
  const s = (b.at - a.at) / 1000;
  const rss = await Promise.all(pids.workers.map(rssMiB));
  return {
    etcd: rates(a, b, hosts),
    workerCpu: (cpu1.workers - cpu0.workers) / s / pids.workers.length,
    fencerCpu: (cpu1.fencers - cpu0.fencers) / s / pids.fencers.length,
    apiCpu: (cpu1.api - cpu0.api) / s,
    etcdCpu: (cpu1.etcd - cpu0.etcd) / s,
    apiMiB: await rssMiB(pids.api),
    workerMiB: rss[0],
    workerMaxMiB: Math.max(...rss),
    fencerMiB: await rssMiB(pids.fencers[0]),
    etcdMiB: await rssMiB(pids.etcd),
    hostsRejoined: [...inc].filter(([h, i]) => after.get(h) !== i).length,
  };
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
      notes:
        `mean of ${r.hosts} workers; a fencer ${
          round(w.fencerCpu * 100, 1)
        } %, API ${round(w.apiCpu * 100, 1)} %, ` +
        `etcd ${round(w.etcdCpu * 100, 1)} %; ${w.hostsRejoined} hosts ` +
        `lost their lease in the window${
          w.hostsRejoined ? " (overloaded: figures disturbed)" : ""
        }`,
    },
    {
      name: `${at}: memory`,
      value: round(w.workerMiB),
      unit: "MiB worker",
      notes: `RSS of the first host's worker (max of all ${
        round(w.workerMaxMiB)
      }); its fencer ${round(w.fencerMiB)} MiB, API process ${
        round(w.apiMiB)
      } MiB, etcd ${round(w.etcdMiB)} MiB`,
    },
  ];
  const rows = r.stages.flatMap((s): Row[] => {
    const at = `scale idle ${r.hosts} hosts x ${s.vmsPerHost} VMs`;
    if (!s.idle) {
      return [{
        name: `${at}: did not settle`,
        value: s.running,
        unit: `of ${s.vms} running`,
        notes: `after ${s.fillSeconds} s (${s.hostMin}-${s.hostMax} a host); ` +
          "workers' logs tell why (etcd deadlines, leases lost, VMs fenced)",
      }];
    }
    return group(
      at,
      s.idle,
      `; ${s.vms} VMs (${s.hostMin}-${s.hostMax} a host, filled in ` +
        `${s.fillSeconds} s), ${round(s.idle.etcd.seconds)} s window`,
    );
  });
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
    value: r.growth.sentBytes ?? "n/a",
    unit: "x bytes sent",
    notes:
      `requests x${r.growth.requests ?? "n/a"}, worker CPU x${
        r.growth.workerCpu ?? "n/a"
      }; ` +
      `goal 1 (idle cost independent of VMs)`,
  });
  return rows;
}
