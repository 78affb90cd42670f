/**
 * Which VMs a rebalance round moves. Pure: the caller reads the documents
 * and enqueues a `vm.move` per planned move (round.ts plans the round,
 * tasks/rebalance_round.ts enqueues it).
 *
 * A host's load is the used share of its capacity, 0..1 (`1 - score()` of
 * rank.ts for nothing more to place: the mean over CPUs and
 * memory). Local disk is not part of the load, only a limit on where a VM
 * may go (`fits()`): most VMs reserve none, and an idle disk share would
 * dilute every gap. Only live, active hosts take part.
 * While the most loaded host's load exceeds the least loaded's by more
 * than `threshold`, one VM moves from the first to the second: the one
 * that fits there and leaves the two closest together (stopped VMs first
 * on a tie: moving them interrupts nothing), and only when that narrows
 * the gap, so moves never overshoot and rounds converge. At most
 * `maxMoves` per round.
 *
 * No surprise moves: a move stops the VM and starts it elsewhere, so a
 * running VM is a candidate only with `running` (the admin's choice,
 * `scheduler.rebalanceRunning`) or when its spec says `movable: true` (its
 * owner's choice). Otherwise only stopped VMs move.
 *
 * @example
 * ```ts
 * const plan = planRebalance(candidates, vms, {
 *   threshold: 0.25,
 *   maxMoves: 2,
 *   running: false,
 * });
 * for (const m of plan.moves) enqueueMove(m.vm, m.from);
 * console.log(plan.reason);
 * ```
 */
import type { Alloc, Vm } from "../core/schemas.ts";
import { fits, isLive } from "./feasible.ts";
import { score } from "./rank.ts";
import {
  type Candidate,
  needOf,
  release,
  reserve,
  sizeOf,
} from "./resources.ts";

export interface PlannedMove {
  vm: string;
  from: string;
  /** The least loaded host; `vm.create` places by policy, avoiding `from`. */
  to: string;
  /** The loads that called for the move. */
  why: string;
  /** The VM's phase: `running` ones are stopped and started elsewhere. */
  phase: "running" | "stopped";
}

export interface RebalancePlan {
  moves: PlannedMove[];
  /** Why the plan stops where it does, with the loads it saw. */
  reason: string;
  /**
   * The hosts whose VMs the plan looked at (the sources it moved from or
   * tried to): a caller that passed only some hosts' VMs plans again with
   * these hosts' VMs too, until it had them all.
   */
  sources: string[];
}

export interface RebalanceOptions {
  threshold: number;
  maxMoves: number;
  /** Running VMs may move too, not only those whose spec allows it. */
  running: boolean;
}

/** Gaps closer than this count as equal (float noise). */
const EPSILON = 1e-9;

/** The used share of a host's CPUs and memory, 0..1 (disk left out). */
export function load(c: Pick<Candidate, "host" | "alloc" | "used">): number {
  const { cpus, memoryMiB } = c.host.capacity;
  const host = { ...c.host, capacity: { cpus, memoryMiB } };
  return 1 - score({ ...c, host }, { cpus: 0, memoryMiB: 0 });
}

/** VM phases a rebalance may move: settled, not in a transition. */
const SETTLED = new Set<Vm["status"]["phase"]>(["running", "stopped"]);

/** True when a round may move `vm` (stopped, or running and allowed). */
export function mayMove(vm: Vm, running: boolean): boolean {
  return vm.status.phase === "stopped" ||
    (vm.status.phase === "running" && (running || vm.spec.movable === true));
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

/** Plans the moves of one rebalance round (see the module comment). */
export function planRebalance(
  candidates: Candidate[],
  vms: Vm[],
  { threshold, maxMoves, running }: RebalanceOptions,
): RebalancePlan {
  const allocs = new Map<string, Alloc | null>(
    candidates.map((c) => [c.host.name, c.alloc]),
  );
  const live = candidates.filter(isLive);
  const view = (c: Candidate) => ({
    host: c.host,
    alloc: allocs.get(c.host.name) ?? null,
  });
  const moved = new Set<string>();
  const moves: PlannedMove[] = [];
  const sources = new Set<string>();
  const done = (reason: string) => ({ moves, reason, sources: [...sources] });
  if (live.length < 2) {
    return done(`${live.length} live active host(s): nothing to balance`);
  }
  while (true) {
    const ranked = live.map((c) => ({ c, l: load(view(c)) }))
      .sort((a, b) => b.l - a.l || a.c.host.name.localeCompare(b.c.host.name));
    const src = ranked[0];
    const dst = ranked[ranked.length - 1];
    const gap = src.l - dst.l;
    const loads = `${src.c.host.name} ${pct(src.l)}, ${dst.c.host.name} ${
      pct(dst.l)
    }`;
    if (gap <= threshold + EPSILON) {
      return done(
        `balanced: ${loads} (gap ${pct(gap)} within ${pct(threshold)})`,
      );
    }
    if (moves.length >= maxMoves) {
      return done(`at most ${maxMoves} move(s) per round: ${loads}`);
    }
    const from = src.c.host.name;
    sources.add(from);
    const to = dst.c.host.name;
    const fromAlloc = allocs.get(from) ?? null;
    const settled = vms.filter((v) =>
      v.status.host === from && v.desired !== "deleted" &&
      SETTLED.has(v.status.phase) && !moved.has(v.id) && fromAlloc !== null
    );
    const options = settled.filter((v) => mayMove(v, running)).flatMap((v) => {
      const need = needOf(v);
      const target = view(dst.c);
      if (!fits(target, need)) return [];
      const srcAfter = release(fromAlloc, sizeOf(need));
      const dstAfter = reserve(target.alloc, need);
      const after = Math.abs(
        load({ host: src.c.host, alloc: srcAfter }) -
          load({ host: dst.c.host, alloc: dstAfter }),
      );
      return after < gap - EPSILON ? [{ v, after, srcAfter, dstAfter }] : [];
    }).sort((a, b) =>
      a.after - b.after ||
      Number(a.v.status.phase !== "stopped") -
        Number(b.v.status.phase !== "stopped") ||
      a.v.id.localeCompare(b.v.id)
    );
    if (options.length === 0) {
      const kept = settled.filter((v) => !mayMove(v, running)).length;
      const stay = kept
        ? ` (${kept} running VM(s) stay: scheduler.rebalanceRunning is off and they are not movable)`
        : "";
      return done(
        `no VM on ${from} fits on ${to} and narrows the gap${stay}: ${loads}`,
      );
    }
    const pick = options[0];
    allocs.set(from, pick.srcAfter);
    allocs.set(to, pick.dstAfter);
    moved.add(pick.v.id);
    moves.push({
      vm: pick.v.id,
      from,
      to,
      why: `${loads} loaded, gap above ${pct(threshold)}`,
      phase: pick.v.status.phase === "running" ? "running" : "stopped",
    });
  }
}
