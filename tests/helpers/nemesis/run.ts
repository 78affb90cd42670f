/**
 * One nemesis run (Jepsen style), shared by `deno task nemesis` and the CI
 * test: starts the cluster (env.ts) with the sim or the qemu VM driver
 * (profile.ts), samples every host's VM processes every 50 ms (sampler.ts), runs the workload (workload.ts) and the seeded
 * faults (schedule.ts, faults.ts) for `durationMs`, heals everything, waits
 * for the cluster to settle (converge.ts) and checks the end state
 * (checker.ts). It prints the seed, every fault, each violation with its
 * evidence, and last the verdict line
 * `nemesis: N faults, N double runs, N lost, N leaked, N stuck`.
 * Everything is torn down before it returns or throws.
 *
 * @example
 * ```ts
 * const r = await runNemesis({ durationMs: 60_000, seed: 42 });
 * if (!r.ok) Deno.exit(1);
 * ```
 */
import { check, type Violation } from "./checker.ts";
import { ApiClient } from "./client.ts";
import { converge, type Convergence, readPrefix } from "./converge.ts";
import { startNemesisEnv } from "./env.ts";
import { at, printDetails } from "./evidence.ts";
import { Nemesis } from "./faults.ts";
import { Rng } from "./rng.ts";
import { type VmDriver, vmProcs } from "./procs.ts";
import { PROFILES } from "./profile.ts";
import { type DoubleRun, type Sampler, startSampler } from "./sampler.ts";
import { planFaults } from "./schedule.ts";
import { Workload } from "./workload.ts";

export interface NemesisRunOptions {
  durationMs: number;
  seed: number;
  /** The VM driver (default sim); its knobs are `PROFILES[driver]`. */
  driver?: VmDriver;
  hosts?: number;
  /** False: the workload alone (proves the harness reports zero). */
  faults?: boolean;
  ttlSeconds?: number;
  /**
   * VMs that should run must run this long after quiet (default TTL + 2 s
   * + the profile's `deadlineExtraMs`).
   */
  deadlineMs?: number;
  /** How long to wait for the cluster to settle after quiet (profile). */
  settleMs?: number;
  clients?: number;
  maxVmsPerClient?: number;
  /** Keep the run's directory (logs, etcd data). */
  keep?: boolean;
  /** Aborts the run (Ctrl-C): it heals, tears down and throws. */
  signal?: AbortSignal;
  print?: (line: string) => void;
}

export interface NemesisReport {
  seed: number;
  faults: number;
  doubleRuns: DoubleRun[];
  violations: Violation[];
  counts: { doubleRuns: number; lost: number; leaked: number; stuck: number };
  /** ms after quiet until every VM was right and no task unfinished. */
  settledAfterMs: number | null;
  /** The slowest VM's time to its desired state after quiet, ms. */
  slowestVmMs: number;
  /**
   * The median time to its desired state after quiet of the VMs whose last
   * change was in flight at quiet (0 without any): how fast the cluster
   * carried out one change in this run, on this machine's load.
   */
  medianInFlightMs: number;
  /** The longest gap between two samples of the processes: a stall, ms. */
  maxGapMs: number;
  verdict: string;
  ok: boolean;
  dir: string;
}

/** How often every host's processes are sampled, ms. */
const SAMPLE_MS = 50;

/** Runs the nemesis once (see the module comment). */
export async function runNemesis(
  opts: NemesisRunOptions,
): Promise<NemesisReport> {
  const print = opts.print ?? console.log;
  const faults = opts.faults ?? true;
  const profile = PROFILES[opts.driver ?? "sim"];
  const settleMs = opts.settleMs ?? profile.settleMs;
  const rng = new Rng(opts.seed);
  print(
    `nemesis: seed ${opts.seed}, ${opts.durationMs / 1000} s, ${
      opts.hosts ?? 3
    } hosts, ${profile.driver} driver, faults ${faults ? "on" : "off"}`,
  );
  const env = await startNemesisEnv({
    hosts: opts.hosts,
    ttlSeconds: opts.ttlSeconds,
    keep: opts.keep,
    profile,
  });
  const plan = faults
    ? planFaults(rng.fork("faults"), {
      durationMs: opts.durationMs,
      hosts: env.hosts,
      ttlMs: env.ttlMs,
    })
    : [];
  let sampler: Sampler | undefined;
  let nemesis: Nemesis | undefined;
  try {
    sampler = await startSampler(env.hostsRoot, env.driver, SAMPLE_MS);
    const start = Date.now();
    nemesis = new Nemesis(env, plan, { print, start });
    print(
      `run dir ${env.dir}; +0.000s is ${
        new Date(start).toISOString()
      }; ${plan.length} faults planned`,
    );
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), opts.durationMs);
    const onAbort = () => ctl.abort();
    opts.signal?.addEventListener("abort", onAbort);
    const workload = new Workload(
      new ApiClient(env.api.url, { signal: opts.signal }),
      rng.fork("workload"),
      {
        hosts: env.hosts,
        start,
        clients: opts.clients ?? profile.clients,
        maxVmsPerClient: opts.maxVmsPerClient ?? profile.maxVmsPerClient,
        pauseMs: profile.pauseMs,
      },
    );
    try {
      await Promise.all([nemesis.run(ctl.signal), workload.run(ctl.signal)]);
      // Ctrl-C also reached the workers and etcd: nothing left to check.
      if (opts.signal?.aborted) throw new Error("Interrupted: no verdict");
      await workload.finish();
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
    for (const vm of workload.vms.values()) {
      if (vm.uncertain) {
        print(`note: vm ${vm.id}: an ambiguous change was never resolved`);
      }
    }
    const quietAt = Date.now();
    const ops = [...workload.counts.values()].reduce((a, b) => a + b, 0);
    print(
      `quiet ${
        at(start, quietAt)
      }: faults healed, workload stopped after ${ops} requests (${
        [...workload.counts].sort().map(([k, v]) => `${k} ${v}`).join(", ")
      })`,
    );

    const want = [...workload.vms.values()];
    const deadlineMs = opts.deadlineMs ??
      env.ttlMs + 2000 + profile.deadlineExtraMs;
    const store = env.connect();
    let conv: Convergence;
    let kv: Record<string, string>;
    try {
      conv = await converge(env, store, want, {
        quietAt,
        deadlineMs,
        settleMs,
      });
      kv = await readPrefix(store, "");
    } finally {
      store.close();
    }
    const sampled = await sampler.stop();
    const violations = check(
      { kv, procs: vmProcs(env.hostsRoot, env.driver) },
      {
        vms: want,
        networks: [...workload.networks.values()],
        hosts: env.hosts,
      },
    );
    for (const [id, why] of conv.late) {
      const v = violations.find((x) =>
        x.kind === "stuck" && x.subject === `vm ${id}`
      );
      const after = conv.readyAfterMs.get(id);
      if (v) {
        v.detail =
          `not running ${deadlineMs} ms after quiet; at the end: ${v.detail}`;
      } else {
        violations.push({
          kind: "stuck",
          subject: `vm ${id}`,
          detail:
            `not running ${deadlineMs} ms after quiet (${why}); ran after ${
              after ?? "?"
            } ms`,
        });
      }
    }
    const slowestVmMs = Math.max(0, ...conv.readyAfterMs.values());
    const slowestVm = [...conv.readyAfterMs].find(([, ms]) =>
      ms === slowestVmMs
    )?.[0] ?? "none";
    const medianInFlightMs = median(
      [...conv.inFlight].flatMap((id) => conv.readyAfterMs.get(id) ?? []),
    );

    await printDetails({
      env,
      start,
      kv,
      print,
      doubleRuns: sampled.doubleRuns,
      violations,
      history: (vm) => workload.vms.get(vm)?.history ?? [],
      exits: nemesis.unexpectedExits,
    });
    print(
      `sampler: ${sampled.samples} samples, ${sampled.longGaps} gaps over ${
        2 * SAMPLE_MS
      } ms, longest ${sampled.maxGapMs} ms (ending ${
        at(start, sampled.maxGapAt)
      }); ${want.length} VMs, at most ${sampled.maxVms} with a process at once, the slowest (${slowestVm}) reached its desired state ${slowestVmMs} ms after quiet, the median of the ${conv.inFlight.size} in flight at quiet ${medianInFlightMs} ms; ${
        conv.settledAfterMs === null
          ? `not settled within ${settleMs} ms`
          : `settled ${conv.settledAfterMs} ms after quiet`
      } (deadline for running VMs ${deadlineMs} ms)`,
    );
    const n = (k: Violation["kind"]) =>
      violations.filter((v) => v.kind === k).length;
    const counts = {
      doubleRuns: sampled.doubleRuns.length,
      lost: n("lost"),
      leaked: n("leaked"),
      stuck: n("stuck"),
    };
    const verdict =
      `nemesis: ${nemesis.injected} faults, ${counts.doubleRuns} double runs, ${counts.lost} lost, ${counts.leaked} leaked, ${counts.stuck} stuck`;
    print(verdict);
    return {
      seed: opts.seed,
      faults: nemesis.injected,
      doubleRuns: sampled.doubleRuns,
      violations,
      counts,
      settledAfterMs: conv.settledAfterMs,
      slowestVmMs,
      medianInFlightMs,
      maxGapMs: sampled.maxGapMs,
      verdict,
      ok: Object.values(counts).every((c) => c === 0),
      dir: env.dir,
    };
  } finally {
    nemesis?.finish();
    await sampler?.stop().catch(() => {});
    await env.stop();
    if (opts.keep) print(`kept ${env.dir}`);
  }
}

/** The median of `xs` (the mean of the middle two), 0 when empty. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? 0 : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
