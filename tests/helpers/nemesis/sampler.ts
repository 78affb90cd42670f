/**
 * Which sim VM process runs on which host, and every moment one VM ran on
 * two hosts. A sim process's argv[0] is `ucloud-sim <pidfile>` with the
 * pidfile `<stateDir>/vms/<id>/sim.pid` (drivers/sim/driver.ts), and every
 * host of a test cluster has its own state dir `<hostsRoot>/<host>`, so the
 * path names both the host and the VM. (Sim processes also run in their
 * host's network namespace, but the path needs no second lookup.)
 *
 * The process table is read synchronously (one `cmdline` read per process,
 * about a millisecond for a few hundred): a sample is one consistent look,
 * not interleaved with the workload's callbacks.
 *
 * @example
 * ```ts
 * const sampler = startSimSampler(`${cluster.dir}/hosts`, 50);
 * // ... faults ...
 * const { doubleRuns, samples, maxGapMs } = await sampler.stop();
 * ```
 */

/** A sim VM process seen on a host. */
export interface SimProc {
  pid: number;
  vm: string;
  host: string;
}

/** Host and VM of a sim process's argv[0], or null when it is not ours. */
export function parseSimArgv0(
  argv0: string,
  hostsRoot: string,
): { host: string; vm: string } | null {
  const head = `ucloud-sim ${hostsRoot.replace(/\/+$/, "")}/`;
  if (!argv0.startsWith(head)) return null;
  const m = argv0.slice(head.length).match(/^([^/]+)\/vms\/([^/]+)\/sim\.pid$/);
  return m ? { host: m[1], vm: m[2] } : null;
}

const decoder = new TextDecoder();

function isZombie(pid: string): boolean {
  try {
    const stat = decoder.decode(Deno.readFileSync(`/proc/${pid}/stat`));
    return /^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return true; // exited meanwhile
  }
}

/** Every live sim process under `hostsRoot`, by one pass over /proc. */
export function simProcs(hostsRoot: string): SimProc[] {
  const out: SimProc[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let argv0: string;
    try {
      const raw = Deno.readFileSync(`/proc/${e.name}/cmdline`);
      const nul = raw.indexOf(0);
      argv0 = decoder.decode(nul >= 0 ? raw.subarray(0, nul) : raw);
    } catch {
      continue; // exited
    }
    const p = parseSimArgv0(argv0, hostsRoot);
    if (p && !isZombie(e.name)) out.push({ pid: Number(e.name), ...p });
  }
  return out;
}

/** One VM running on two or more hosts over consecutive samples. */
export interface DoubleRun {
  vm: string;
  /** The distinct hosts, sorted. */
  hosts: string[];
  /** Date.now() of the first and the last sample that saw it. */
  from: number;
  to: number;
  samples: number;
  pids: number[];
}

/**
 * Folds samples into double-run episodes: consecutive samples in which the
 * same VM runs on the same set of hosts are one episode. Pure.
 */
export class DoubleRunTracker {
  readonly #open = new Map<string, DoubleRun>();
  readonly #done: DoubleRun[] = [];

  /** Adds one sample taken at `at`. */
  add(at: number, procs: readonly SimProc[]): void {
    const byVm = new Map<string, { hosts: Set<string>; pids: number[] }>();
    for (const p of procs) {
      const v = byVm.get(p.vm) ?? { hosts: new Set(), pids: [] };
      v.hosts.add(p.host);
      v.pids.push(p.pid);
      byVm.set(p.vm, v);
    }
    const seen = new Set<string>();
    for (const [vm, v] of byVm) {
      if (v.hosts.size < 2) continue;
      const hosts = [...v.hosts].sort();
      const key = `${vm} ${hosts.join(",")}`;
      seen.add(key);
      const open = this.#open.get(key);
      if (open) {
        open.to = at;
        open.samples++;
        open.pids = [...new Set([...open.pids, ...v.pids])];
      } else {
        this.#open.set(key, {
          vm,
          hosts,
          from: at,
          to: at,
          samples: 1,
          pids: [...v.pids],
        });
      }
    }
    for (const [key, run] of this.#open) {
      if (seen.has(key)) continue;
      this.#done.push(run);
      this.#open.delete(key);
    }
  }

  /** Every episode so far (closed and still open), by start time. */
  episodes(): DoubleRun[] {
    return [...this.#done, ...this.#open.values()].sort((a, b) =>
      a.from - b.from
    );
  }
}

/** What a sampler saw. */
export interface SamplerResult {
  samples: number;
  /** The longest time between two samples (the resolution achieved). */
  maxGapMs: number;
  /** Date.now() at the end of that gap. */
  maxGapAt: number;
  doubleRuns: DoubleRun[];
}

/** A running {@linkcode startSimSampler}. */
export interface SimSampler {
  /** The latest sample (empty before the first). */
  latest(): { at: number; procs: SimProc[] };
  stop(): Promise<SamplerResult>;
}

/** Samples {@linkcode simProcs} every `everyMs` until `stop()`. */
export function startSimSampler(hostsRoot: string, everyMs = 50): SimSampler {
  const tracker = new DoubleRunTracker();
  let last = { at: 0, procs: [] as SimProc[] };
  let samples = 0;
  let maxGapMs = 0;
  let maxGapAt = 0;
  let error: unknown;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    try {
      const at = Date.now();
      const procs = simProcs(hostsRoot);
      if (samples > 0 && at - last.at > maxGapMs) {
        maxGapMs = at - last.at;
        maxGapAt = at;
      }
      last = { at, procs };
      samples++;
      tracker.add(at, procs);
    } catch (err) {
      error = err;
      return;
    }
    timer = setTimeout(tick, Math.max(0, last.at + everyMs - Date.now()));
  };
  tick();
  return {
    latest: () => last,
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (error) return Promise.reject(error);
      return Promise.resolve({
        samples,
        maxGapMs,
        maxGapAt,
        doubleRuns: tracker.episodes(),
      });
    },
  };
}
