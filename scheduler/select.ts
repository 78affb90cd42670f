/**
 * Selection: which host gets a VM. Pure; the caller reads the documents
 * (or takes them from the placement cache, cache.ts) and writes the
 * reservation in a transaction comparing the host's `alloc/` revision
 * (place.ts).
 *
 * Of the feasible hosts (feasible.ts), ranked by policy (rank.ts),
 * near-ties are broken at random (for spread: two random hosts of the
 * best few, the freer wins), so concurrent placers rarely pick the same
 * host and lose the compare to each other. Hosts marked `busy` (this
 * process is already writing their reservation) are used only when
 * nothing else fits.
 *
 * @example
 * ```ts
 * const r = choose(candidates, { cpus: 1, memoryMiB: 128 }, "spread");
 * if ("host" in r) reserve(r.host); else console.log(r.reason);
 * ```
 */
import { feasible, noFitReason } from "./feasible.ts";
import { NEAR_TIE, type Policy, rank } from "./rank.ts";
import type { Candidate, Need } from "./resources.ts";

/** Picks a host for `need` under `policy`, or explains why none fits. */
export function choose(
  candidates: Candidate[],
  need: Need,
  policy: Policy = "spread",
  rand: () => number = Math.random,
): { host: string } | { reason: string } {
  const fitting = feasible(candidates, need);
  if (fitting.length === 0) return { reason: noFitReason(candidates, need) };
  const idle = fitting.filter((c) => !c.busy);
  const pool = idle.length ? idle : fitting;
  const scored = rank(pool, need, policy);
  const best = scored[0].s;
  const ties = scored.filter((x) => best - x.s <= NEAR_TIE);
  const at = (n: number) => Math.min(n - 1, Math.floor(rand() * n));
  let pick = ties[at(ties.length)];
  if (policy === "spread" && ties.length > 1) {
    const other = ties[at(ties.length)];
    if (other.s > pick.s) pick = other;
  }
  return { host: pick.c.host.name };
}
