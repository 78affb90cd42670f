/**
 * What one maintenance round plans (tasks/rebalance_round.ts runs it,
 * `ucloud host rebalance --dry-run` shows it). Pure:
 *
 * 1. every live draining host whose drain plan (drain.ts) still has VMs
 *    and that has no unfinished `host.drain` gets its drain resumed;
 * 2. with the `spread` policy, `scheduler.rebalanceMaxMoves` above 0 and
 *    no drain or move in flight (a drain re-places VMs too: loads are
 *    settled only once earlier ones are done), the rebalance plan
 *    (rebalance.ts) over the live hosts.
 *
 * Liveness here is an `alive/` document existing, handing over or not.
 *
 * @example
 * ```ts
 * const p = planRound({ hosts, alive, allocs, vms, running }, scheduler);
 * p.drains; // hosts whose host.drain to enqueue again
 * p.moves; // vm.move tasks to enqueue
 * ```
 */
import type { Config } from "../core/config.ts";
import type { Alloc, Host, Task, Vm } from "../core/schemas.ts";
import { drainPlan } from "./drain.ts";
import { type PlannedMove, planRebalance } from "./rebalance.ts";
import type { Candidate } from "./resources.ts";

/** The cluster as a round read it. */
export interface RoundInput {
  hosts: Host[];
  /** Names of hosts with an `alive/` document. */
  alive: Set<string>;
  allocs: Map<string, Alloc>;
  vms: Vm[];
  /** Unfinished (queued or running) tasks. */
  running: Task[];
}

/** Drains to resume and moves to enqueue, with why it stops there. */
export interface RoundPlan {
  /** Why it moves what it moves, or why nothing. */
  reason: string;
  /** Draining hosts whose `host.drain` the round enqueues again. */
  drains: string[];
  moves: PlannedMove[];
  /**
   * The hosts whose VMs the plan depends on (draining hosts it checked,
   * rebalance sources): planned from only some hosts' VMs, the plan holds
   * once every host named here had its VMs in the input.
   */
  looked: string[];
}

/** Plans drains and moves of one round (see the module comment). */
export function planRound(
  { hosts, alive, allocs, vms, running }: RoundInput,
  s: Config["scheduler"],
): RoundPlan {
  const drains: string[] = [];
  const looked: string[] = [];
  for (const h of hosts) {
    if (h.state !== "draining" || !alive.has(h.name)) continue;
    const draining = running.some((t) =>
      t.kind === "host.drain" && t.payload.host === h.name
    );
    if (draining) continue;
    looked.push(h.name);
    if (drainPlan(h.name, vms, running).move.length === 0) continue;
    drains.push(h.name);
  }
  const inFlight = running.filter(isMove).length + drains.length;
  if (s.policy !== "spread") {
    return {
      reason: `scheduler.policy is ${s.policy}: only drains are rebalanced`,
      drains,
      moves: [],
      looked,
    };
  }
  if (s.rebalanceMaxMoves === 0) {
    return {
      reason: "scheduler.rebalanceMaxMoves is 0",
      drains,
      moves: [],
      looked,
    };
  }
  if (inFlight > 0) {
    return {
      reason: `${inFlight} move(s) or drain(s) still in flight`,
      drains,
      moves: [],
      looked,
    };
  }
  const candidates: Candidate[] = hosts.map((h) => ({
    host: h,
    alive: alive.has(h.name),
    alloc: allocs.get(h.name) ?? null,
  }));
  const p = planRebalance(candidates, vms, {
    threshold: s.rebalanceThreshold,
    maxMoves: s.rebalanceMaxMoves,
    running: s.rebalanceRunning,
  });
  return {
    reason: p.reason,
    drains,
    moves: p.moves,
    looked: [...looked, ...p.sources],
  };
}

/** Unfinished work that moves VMs: drains, moves and their re-placing. */
export function isMove(t: Task): boolean {
  return t.kind === "vm.move" || t.kind === "host.drain" ||
    (t.kind === "vm.create" && typeof t.payload.avoid === "string");
}
