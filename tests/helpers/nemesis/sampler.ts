/**
 * Every moment one VM ran on two hosts: samples which VM process runs on
 * which host (procs.ts, for the sim and the qemu driver) every `everyMs`
 * and folds the samples into double-run episodes.
 *
 * The process table is read synchronously (one `comm` read per process,
 * about a millisecond for a few hundred), in a sampler process of its own
 * at a raised priority, so the gaps between samples stay near `everyMs`.
 *
 * @example
 * ```ts
 * const sampler = await startSampler(`${cluster.dir}/hosts`, "qemu", 50);
 * // ... faults ...
 * const { doubleRuns, samples, maxGapMs } = await sampler.stop();
 * ```
 */

import { type VmDriver, type VmProc, vmProcs } from "./procs.ts";

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
  add(at: number, procs: readonly VmProc[]): void {
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
  /** The most VMs with a process one sample saw (how loaded hosts were). */
  maxVms: number;
  doubleRuns: DoubleRun[];
}

/**
 * Samples {@linkcode vmProcs} of `driver` every `everyMs` (aiming at a
 * fixed cadence) until `signal` fires.
 */
export async function sampleUntil(
  hostsRoot: string,
  driver: VmDriver,
  everyMs: number,
  signal: AbortSignal,
): Promise<SamplerResult> {
  const tracker = new DoubleRunTracker();
  let last = 0;
  let samples = 0;
  let maxGapMs = 0;
  let maxGapAt = 0;
  let longGaps = 0;
  let maxVms = 0;
  while (!signal.aborted) {
    const at = Date.now();
    const procs = vmProcs(hostsRoot, driver);
    maxVms = Math.max(maxVms, new Set(procs.map((p) => p.vm)).size);
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
    maxVms,
    doubleRuns: tracker.episodes(),
  };
}

/** A running {@linkcode startSampler}. */
export interface Sampler {
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
export async function startSampler(
  hostsRoot: string,
  driver: VmDriver,
  everyMs = 50,
): Promise<Sampler> {
  const child = new Deno.Command("nice", {
    args: [
      "-n",
      "-10",
      Deno.execPath(),
      "run",
      "-A", // reading all of /proc needs it
      SELF,
      hostsRoot,
      driver,
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
      if (done) throw new Error("The sampler process exited");
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
  const [hostsRoot, driver, everyMs] = Deno.args;
  const ctl = new AbortController();
  const run = sampleUntil(
    hostsRoot,
    driver as VmDriver,
    Number(everyMs),
    ctl.signal,
  );
  console.log("ready");
  for await (const _ of Deno.stdin.readable) { /* until EOF */ }
  ctl.abort();
  console.log(JSON.stringify(await run));
}
