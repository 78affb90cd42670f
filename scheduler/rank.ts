/**
 * Ranking: how good a feasible host is for a VM under the placement
 * policy. Both policies judge room by one normalized score, the share of
 * the host left free after placing the VM, averaged over CPUs, memory and
 * (where the host tracks it) local disk. `spread` (the default) prefers
 * the most room left, `pack` the least room that still fits. Pure.
 *
 * @example
 * ```ts
 * const ranked = rank(feasible(candidates, need), need, "spread");
 * ranked[0].c.host.name; // the best host; ties within NEAR_TIE of it
 * ```
 */
import { type Candidate, effective, free, type Need } from "./resources.ts";

export type Policy = "spread" | "pack";
export const POLICIES: readonly Policy[] = ["spread", "pack"];

/** Scores closer than this (a fraction of capacity) count as a tie. */
export const NEAR_TIE = 0.05;

/**
 * The share of the host left free after placing `need`, 0..1, averaged
 * over CPUs, memory and (when tracked) disk, of what the host offers
 * (`effective()`: with its allocation ratios and memory reserve).
 */
export function score(
  c: Pick<Candidate, "host" | "alloc" | "used">,
  need: Need,
): number {
  const f = free(c);
  const cap = effective(c.host);
  const parts = [
    (f.cpus - need.cpus) / Math.max(1, cap.cpus),
    (f.memoryMiB - need.memoryMiB) / Math.max(1, cap.memoryMiB),
  ];
  if (f.diskMiB !== undefined && cap.diskMiB) {
    parts.push((f.diskMiB - (need.diskMiB ?? 0)) / cap.diskMiB);
  }
  return parts.reduce((s, x) => s + x, 0) / parts.length;
}

/** A candidate with its rank: higher is better under the policy. */
export interface Ranked {
  c: Candidate;
  s: number;
}

/** `pool` best first under `policy` (a stable sort: equal ranks keep order). */
export function rank(pool: Candidate[], need: Need, policy: Policy): Ranked[] {
  const sign = policy === "pack" ? -1 : 1;
  return pool.map((c) => ({ c, s: sign * score(c, need) }))
    .sort((a, b) => b.s - a.s);
}
