/**
 * The nemesis's plan, drawn from a seeded {@linkcode Rng} before the run
 * starts, so the same seed injects the same faults at the same offsets into
 * the same targets (only the system's timing varies). Pure: no I/O.
 *
 * Kinds and their durations (TTL = the lease TTL):
 * - `kill-worker`: SIGKILL a host's worker, start it again after 0.2-3 TTL
 *   (sometimes within the fence deadline, so it adopts its lease; sometimes
 *   after, so the host fails over).
 * - `stop-worker`: SIGSTOP a host's worker, SIGCONT after 0.3-3 TTL.
 * - `kill-fencer`: SIGKILL a host's fencer (nothing restarts it but the
 *   system itself).
 * - `partition`: cut a host's underlay link, heal it after 0.5-4 TTL.
 * - `restart-etcd`: stop etcd, start it again after 0-1.5 TTL.
 * - `kill-api`: SIGKILL the API process, start it again after 0.2-3 s.
 *
 * At most `maxHostsFaulty` hosts have a fault at once, one fault per
 * target at a time, and each target gets one TTL to recover before its next.
 *
 * @example
 * ```ts
 * const plan = planFaults(new Rng(7), {
 *   durationMs: 60_000, hosts: ["h1", "h2", "h3"], ttlMs: 2000,
 * });
 * plan[0]; // { at: 2310, kind: "partition", target: "h2", durationMs: 4120 }
 * ```
 */
import type { Rng } from "./rng.ts";

export const FAULT_KINDS = [
  "kill-worker",
  "stop-worker",
  "kill-fencer",
  "partition",
  "restart-etcd",
  "kill-api",
] as const;
export type FaultKind = typeof FAULT_KINDS[number];

/** Faults whose target is a host (the others target etcd or the API). */
export const HOST_FAULTS: ReadonlySet<FaultKind> = new Set([
  "kill-worker",
  "stop-worker",
  "kill-fencer",
  "partition",
]);

/** One fault of the plan. */
export interface PlannedFault {
  /** Offset from the start of the run, ms. */
  at: number;
  kind: FaultKind;
  /** A host name, `etcd` or `api`. */
  target: string;
  /** How long until it is healed, ms (0: nothing to heal). */
  durationMs: number;
}

export interface ScheduleOptions {
  /** Faults start within [0, durationMs). */
  durationMs: number;
  hosts: readonly string[];
  ttlMs: number;
  /** Kinds to draw from (default: all). */
  kinds?: readonly FaultKind[];
  /** Pause between two faults' starts, ms (default 1000-4000). */
  gapMs?: readonly [number, number];
  /** Most hosts with a fault at one time (default hosts - 1). */
  maxHostsFaulty?: number;
}

const WEIGHTS: Record<FaultKind, number> = {
  "kill-worker": 2,
  "stop-worker": 2,
  "kill-fencer": 1,
  "partition": 2,
  "restart-etcd": 1,
  "kill-api": 1,
};

function durationOf(rng: Rng, kind: FaultKind, ttlMs: number): number {
  const ttls = (min: number, max: number) =>
    Math.round(rng.between(min, max) * ttlMs);
  switch (kind) {
    case "kill-worker":
      return ttls(0.2, 3);
    case "stop-worker":
      return ttls(0.3, 3);
    case "kill-fencer":
      return 0;
    case "partition":
      return ttls(0.5, 4);
    case "restart-etcd":
      return ttls(0, 1.5);
    case "kill-api":
      return Math.round(rng.between(200, 3000));
  }
}

/** Draws the whole fault plan (sorted by `at`). */
export function planFaults(rng: Rng, opts: ScheduleOptions): PlannedFault[] {
  const kinds = opts.kinds ?? FAULT_KINDS;
  const [gapMin, gapMax] = opts.gapMs ?? [1000, 4000];
  const maxHosts = opts.maxHostsFaulty ?? Math.max(1, opts.hosts.length - 1);
  if (kinds.length === 0) return [];
  /** Target -> until when it is busy (fault plus one TTL to recover). */
  const busy = new Map<string, number>();
  const out: PlannedFault[] = [];
  for (
    let at = Math.round(rng.between(gapMin, gapMax));
    at < opts.durationMs;
    at += Math.round(rng.between(gapMin, gapMax))
  ) {
    const kind = rng.weighted(kinds.map((k) => [k, WEIGHTS[k]] as const));
    const free = (t: string) => (busy.get(t) ?? -1) <= at;
    let target: string;
    if (HOST_FAULTS.has(kind)) {
      const faulty = opts.hosts.filter((h) => !free(h)).length;
      const candidates = opts.hosts.filter(free);
      // Draw even when unused, so later draws do not depend on this one.
      const pick = rng.next();
      if (faulty >= maxHosts || candidates.length === 0) continue;
      target = candidates[Math.floor(pick * candidates.length)];
    } else {
      target = kind === "restart-etcd" ? "etcd" : "api";
      if (!free(target)) continue;
    }
    const durationMs = durationOf(rng, kind, opts.ttlMs);
    busy.set(target, at + durationMs + opts.ttlMs);
    out.push({ at, kind, target, durationMs });
  }
  return out;
}
