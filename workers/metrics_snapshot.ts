/**
 * What one scrape of the worker's `/metrics` reports, gathered at once
 * (workers/metrics.ts turns it into series): this host's VMs from the
 * watched cache (workers/host_vms.ts), its document and reservations from
 * the placement cache (scheduler/cache.ts; no etcd request), each VM
 * process's CPU and memory from /proc, each qemu's disk counters over QMP
 * (all VMs at once, each within `qmpTimeoutMs`: a VM that does not answer
 * in time is left out and counted as a scrape error), the links' and the
 * port rules' counters (drivers/net/counters.ts) and the host's load,
 * memory and CPU times. A source that fails is left out and named in
 * `errors`; the rest is reported.
 *
 * @example
 * ```ts
 * const snap = await gather(sources);
 * snap.procs.get("vm-1")?.cpuSeconds;
 * ```
 */
import { monotonicMs } from "../core/clock.ts";
import type { Host, Vm } from "../core/schemas.ts";
import type { Kv } from "../core/store.ts";
import { type BlockStats, blockStats } from "../drivers/qemu/blockstats.ts";
import type {
  LinkCounters,
  NetCounters,
  RuleCount,
} from "../drivers/net/counters.ts";
import type { HostNetState } from "../drivers/net/types.ts";
import type { Candidate } from "../scheduler/resources.ts";
import {
  cpuTimes,
  diskUse,
  loadAverages,
  memInfo,
  type ProcessStats,
  processStats,
} from "./metrics_proc.ts";

/** Where a scrape reads from; fields are filled in as the worker starts. */
export interface MetricsSources {
  /** This host's VMs (the watched cache's `items()`). */
  vms?: () => Kv<Vm>[];
  /** This host as placement sees it (document and reservations). */
  candidate?: () => Candidate | undefined;
  /** The host document this incarnation registered. */
  host?: Host;
  /** The lease session: last acknowledged keep-alive and deadline. */
  lease?: { readonly lastKeepAlive: number; readonly deadline: number };
  /** The lease's TTL (`worker.leaseTtlSeconds`). */
  leaseTtlSeconds?: number;
  /** Host networking: the last synced state and the counters. */
  net?: { state: () => HostNetState | undefined; counters: NetCounters };
  /** How long one VM's QMP answer may take. */
  qmpTimeoutMs: number;
  /** The state directory: the host's disk use is its filesystem's. */
  stateDir?: string;
}

/** Everything one scrape reports (see the module comment). */
export interface Snapshot {
  vms: Vm[];
  candidate?: Candidate;
  host?: Host;
  lease?: { ageSeconds: number; marginSeconds: number; ttlSeconds: number };
  procs: Map<string, ProcessStats>;
  blocks: Map<string, BlockStats[]>;
  netState?: HostNetState;
  links?: Map<string, LinkCounters>;
  drops?: Map<string, Map<string, RuleCount>>;
  load?: [number, number, number];
  memory?: { totalBytes: number; availableBytes: number };
  disk?: { sizeBytes: number; usedBytes: number; availableBytes: number };
  cpu?: Map<string, number>;
  /** Sources that failed, each once per failure ("qmp" once per VM). */
  errors: string[];
  /** How long gathering took, in seconds. */
  seconds: number;
}

type ProcHandle = { pid?: unknown; pidfile?: unknown; qmp?: unknown };

/** Gathers one scrape's data (see the module comment). */
export async function gather(src: MetricsSources): Promise<Snapshot> {
  const started = performance.now();
  const errors: string[] = [];
  const soft = <T>(what: string, p: Promise<T>): Promise<T | undefined> =>
    p.catch(() => {
      errors.push(what);
      return undefined;
    });
  const vms = (src.vms?.() ?? []).map((kv) => kv.value);
  const procs = new Map<string, ProcessStats>();
  const blocks = new Map<string, BlockStats[]>();
  const perVm = vms.map(async (vm) => {
    const h = (vm.status.handle ?? {}) as ProcHandle;
    if (typeof h.pid !== "number" || typeof h.pidfile !== "string") return;
    const p = await processStats(h.pid, h.pidfile);
    if (!p) return;
    procs.set(vm.id, p);
    if (vm.status.handle?.driver !== "qemu" || typeof h.qmp !== "string") {
      return;
    }
    const b = await soft(
      "qmp",
      blockStats(h.qmp, { timeoutMs: src.qmpTimeoutMs }),
    );
    if (b) blocks.set(vm.id, b);
  });
  const netState = src.net?.state();
  const ports = netState?.ports.length ?? 0;
  const [links, drops, load, memory, cpu, disk] = await Promise.all([
    src.net ? soft("links", src.net.counters.links()) : undefined,
    src.net && ports ? soft("nft", src.net.counters.ruleDrops()) : undefined,
    soft("loadavg", loadAverages()),
    soft("meminfo", memInfo()),
    soft("stat", cpuTimes()),
    src.stateDir ? soft("statfs", diskUse(src.stateDir)) : undefined,
    ...perVm,
  ]);
  const now = monotonicMs();
  const l = src.lease;
  return {
    vms,
    candidate: src.candidate?.(),
    host: src.host,
    lease: l && {
      ageSeconds: Math.max(0, now - l.lastKeepAlive) / 1000,
      marginSeconds: (l.deadline - now) / 1000,
      ttlSeconds: src.leaseTtlSeconds ?? 0,
    },
    procs,
    blocks,
    netState,
    links,
    drops,
    load,
    memory,
    cpu,
    disk,
    errors,
    seconds: (performance.now() - started) / 1000,
  };
}
