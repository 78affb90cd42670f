/**
 * Which sim VM process runs on which host, and every moment one VM ran on
 * two hosts. A sim process's argv[0] is `ucloud-sim <pidfile>` with the
 * pidfile `<stateDir>/vms/<id>/sim.pid` (drivers/sim/driver.ts), and every
 * host of a test cluster has its own state dir `<hostsRoot>/<host>`, so the
 * path names both the host and the VM. (Sim processes also run in their
 * host's network namespace, but the path needs no second lookup.)
 *
 * The process table is read synchronously (one `comm` read per process,
 * about a millisecond for a few hundred), in a sampler process of its own
 * at a raised priority, so the gaps between samples stay near `everyMs`.
 *
 * @example
 * ```ts
 * const sampler = await startSimSampler(`${cluster.dir}/hosts`, 50);
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
      // A sim process is `sleep` renamed. `comm` is read without the
      // process's memory lock, `cmdline` is not: reading the command line
      // of a process busy mapping memory (etcd or deno starting) can stall
      // for a few hundred ms, so only sleeps' command lines are read.
      if (
        decoder.decode(Deno.readFileSync(`/proc/${e.name}/comm`)) !== "sleep\n"
      ) {
        continue;
      }
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
  /** How many gaps were longer than twice the interval. */
  longGaps: number;
  doubleRuns: DoubleRun[];
}

/**
 * Samples {@linkcode simProcs} every `everyMs` (aiming at a fixed cadence)
 * until `signal` fires.
 */
export async function sampleUntil(
  hostsRoot: string,
  everyMs: number,
  signal: AbortSignal,
): Promise<SamplerResult> {
  const tracker = new DoubleRunTracker();
  let last = 0;
  let samples = 0;
  let maxGapMs = 0;
  let maxGapAt = 0;
  let longGaps = 0;
  while (!signal.aborted) {
    const at = Date.now();
    const procs = simProcs(hostsRoot);
    if (samples > 0 && at - last > maxGapMs) {
      maxGapMs = at - last;
      maxGapAt = at;
    }
    if (samples > 0 && at - last > 2 * everyMs) longGaps++;
    last = at;
    samples++;
    tracker.add(at, procs);
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.max(0, at + everyMs - Date.now()));
      function done() {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done);
    });
  }
  return {
    samples,
    maxGapMs,
    maxGapAt,
    longGaps,
    doubleRuns: tracker.episodes(),
  };
}

/** A running {@linkcode startSimSampler}. */
export interface SimSampler {
  /** Stops sampling; resolves with what it saw (once; later calls too). */
  stop(): Promise<SamplerResult>;
}

const SELF = new URL(import.meta.url).pathname;

/**
 * Starts sampling in a process of its own at a raised priority (`nice -n
 * -10`), so neither this process's event loop nor the CPU load of the
 * system under test stretches the gaps between samples. Resolves once the
 * first sample is taken. The process ends when this one closes its stdin
 * (also when this process dies).
 */
export async function startSimSampler(
  hostsRoot: string,
  everyMs = 50,
): Promise<SimSampler> {
  const child = new Deno.Command("nice", {
    args: [
      "-n",
      "-10",
      Deno.execPath(),
      "run",
      "-A", // reading all of /proc needs it
      SELF,
      hostsRoot,
      String(everyMs),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let buffered = "";
  const readLine = async (): Promise<string> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("The sim sampler process exited");
      buffered += value;
    }
    const i = buffered.indexOf("\n");
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    return line;
  };
  try {
    if (await readLine() !== "ready") throw new Error("Bad sampler greeting");
  } catch (err) {
    child.kill("SIGKILL");
    await child.status;
    throw err;
  }
  let result: Promise<SamplerResult> | undefined;
  return {
    stop() {
      result ??= (async () => {
        await child.stdin.close();
        const line = await readLine();
        await child.status;
        return JSON.parse(line) as SamplerResult;
      })();
      return result;
    },
  };
}

if (import.meta.main) {
  const [hostsRoot, everyMs] = Deno.args;
  const ctl = new AbortController();
  const run = sampleUntil(hostsRoot, Number(everyMs), ctl.signal);
  console.log("ready");
  for await (const _ of Deno.stdin.readable) { /* until EOF */ }
  ctl.abort();
  console.log(JSON.stringify(await run));
}
