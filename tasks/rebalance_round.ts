/**
 * The rebalancer: one round of cluster maintenance, run by `Deno.cron` on
 * every worker (workers/maintenance.ts, `scheduler.rebalanceSchedule`) and
 * by `POST /v1/maintenance/rebalance`. The scheduler plans it
 * (scheduler/round.ts); this module reads the cluster, holds the round's
 * lock and enqueues the plan as task documents. A round
 *
 * 1. makes sure every live draining host that still has VMs without a
 *    `vm.move` gets a `host.drain` task (again, e.g. after a move failed
 *    or a VM was placed there while the drain began);
 * 2. with the `spread` policy and no drain or move in flight, moves up to
 *    `scheduler.rebalanceMaxMoves` VMs from the most to the least loaded
 *    live active host while their loads differ by more than
 *    `scheduler.rebalanceThreshold` (scheduler/rebalance.ts): one `vm.move`
 *    task each, avoiding the source. Only stopped VMs move, and running
 *    ones whose spec says `movable`, unless `scheduler.rebalanceRunning`.
 *
 * {@linkcode planOnce} answers what a round would do without doing it. A
 * round that did nothing logs at debug level only.
 *
 * Only one round runs at a time in the cluster: the round holds
 * `cron/rebalance`, created if absent and bound to a short lease of its
 * own, and every write it makes compares that key's lease (the lock fences
 * its own writes, like etcd's concurrency mutex). A scheduled round also
 * creates `cron-round/rebalance/<round>` with the lock, left to expire
 * with the lease, so of all workers whose cron fires for the same minute
 * only the first runs it. Every drain and move is a task document.
 *
 * @example
 * ```ts
 * const r = await rebalanceOnce(store, config, { by: "h1" });
 * console.log(r.moves, r.reason);
 * ```
 */
import type { Config } from "../core/config.ts";
import { UnreadableError } from "../core/errors.ts";
import { idOf, keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Alive, Alloc, CronLock, Host, Vm } from "../core/schemas.ts";
import type { Kv, Store } from "../core/store.ts";
import {
  type PlannedMove,
  planRound,
  type RoundPlan,
} from "../scheduler/mod.ts";
import { placedOn } from "../scheduler/placed_on.ts";
import { enqueue, newTask, unfinished } from "./queue.ts";

/** The job name: lock `cron/rebalance`, rounds `cron-round/rebalance/`. */
export const REBALANCE = "rebalance";

/**
 * Tasks one round enqueues per transaction: 1 + 2 x 40 compares and 80
 * writes, under etcd's 128 operations, however many hosts or moves.
 */
export const ROUND_BATCH = 40;

/** What a round did; every drain and move names its task document. */
export interface RebalanceResult {
  /** False when another round held the lock (or this round already ran). */
  ran: boolean;
  by: string;
  at: string;
  round?: string;
  /** Why it moved what it moved, or why nothing. */
  reason: string;
  drains: { host: string; task: string }[];
  moves: (PlannedMove & { task: string })[];
}

export interface RebalanceOptions {
  /** Who runs the round (a worker's host name, or `api:<principal>`). */
  by: string;
  /** A scheduled round's id (e.g. the minute): each round runs once. */
  round?: string;
  log?: Logger;
  now?: Date;
}

type Settings = Pick<Config, "scheduler" | "tasks">;

/** The round id of a scheduled run: the UTC minute, `2026-01-01T12:00`. */
export function roundOf(now: Date): string {
  return now.toISOString().slice(0, 16);
}

/** Runs one rebalance round (see the module comment). */
export async function rebalanceOnce(
  store: Store,
  config: Settings,
  opts: RebalanceOptions,
): Promise<RebalanceResult> {
  const now = opts.now ?? new Date();
  const base = {
    by: opts.by,
    at: now.toISOString(),
    ...(opts.round ? { round: opts.round } : {}),
  };
  const lock = keys.cronLock(REBALANCE);
  // The TTL bounds how long a crashed round blocks others; a scheduled
  // round's key must also outlive the minute its cron fired in.
  const lease = await store.grantLease(opts.round ? 90 : 30);
  let release = true;
  try {
    const take = store.txn().ifAbsent(lock)
      .put(lock, { by: opts.by, at: base.at }, { lease });
    if (opts.round) {
      const k = keys.cronRound(REBALANCE, opts.round);
      take.ifAbsent(k).put(k, { by: opts.by, at: base.at }, { lease });
    }
    if (!(await take.commit()).ok) {
      return {
        ...base,
        ran: false,
        reason: await whyLocked(store, opts),
        drains: [],
        moves: [],
      };
    }
    // A scheduled round keeps its lease: the round key expires with it.
    release = !opts.round;
    try {
      return { ...base, ran: true, ...await round(store, config, lease, opts) };
    } finally {
      await store.txn().ifLease(lock, lease).delete(lock).commit();
    }
  } finally {
    if (release) await store.revokeLease(lease);
  }
}

async function whyLocked(
  store: Store,
  opts: RebalanceOptions,
): Promise<string> {
  const held = await store.get(keys.cronLock(REBALANCE), CronLock);
  if (held) {
    return `another rebalance round is running (${held.value.by} since ${held.value.at})`;
  }
  if (opts.round) {
    const r = await store.get(keys.cronRound(REBALANCE, opts.round), CronLock);
    return `round ${opts.round} already ran${r ? ` on ${r.value.by}` : ""}`;
  }
  return "another rebalance round just ended; try again";
}

/** What a round would do now, read from etcd; nothing is written. */
export interface RebalancePlanView {
  by: string;
  at: string;
  /** Why it would move what it moves, or why nothing. */
  reason: string;
  /** Draining hosts whose drain would be resumed. */
  drains: { host: string }[];
  moves: PlannedMove[];
}

/**
 * The plan of a round without running it (`ucloud host rebalance
 * --dry-run`): no lock, no task, no write. A round run right after may
 * still differ when the cluster changed meanwhile.
 */
export async function planOnce(
  store: Store,
  config: Settings,
  opts: Pick<RebalanceOptions, "by" | "now">,
): Promise<RebalancePlanView> {
  const p = await plan(store, config);
  return {
    by: opts.by,
    at: (opts.now ?? new Date()).toISOString(),
    reason: p.reason,
    drains: p.drainTasks.map((t) => ({ host: String(t.payload.host) })),
    moves: p.moves,
  };
}

/**
 * Reads the cluster and plans drains and moves (scheduler/round.ts). Hosts,
 * liveness and reservations are read whole (they grow with hosts, not
 * VMs); VMs only of the hosts the plan looks at (scheduler/placed_on.ts),
 * planning again until it had every one's: a balanced cluster with no
 * drain reads no VM.
 */
async function plan(store: Store, config: Settings, log?: Logger) {
  // Tasks first: a move finishing meanwhile wrote its VM, which is then
  // read off its host, not on it without a move.
  const running = await unfinished(store);
  const [hosts, alive, allocs] = await Promise.all([
    store.list(keys.hosts, Host),
    store.list(keys.alives, Alive),
    store.list(keys.allocs, Alloc),
  ]);
  const read = new Map<string, Kv<Vm>[]>();
  for (;;) {
    const vms = latest([...read.values()].flat());
    const p = planRound({
      hosts: hosts.items.map((h) => h.value),
      alive: new Set(alive.items.map((a) => idOf(a.key))),
      allocs: new Map(allocs.items.map((a) => [idOf(a.key), a.value])),
      vms: vms.map((v) => v.value),
      running,
    }, config.scheduler);
    const more = p.looked.filter((h) => !read.has(h));
    if (more.length === 0) return { ...tasksOf(p, config), vms };
    await Promise.all(more.map(async (h) => {
      read.set(h, await vmsOf(store, h, log));
    }));
  }
}

/**
 * The VMs reserved on `host`; none when its reservations cannot be read
 * (logged): the other hosts are still balanced, and nothing could move
 * off this one (a move releases its reservation).
 */
async function vmsOf(
  store: Store,
  host: string,
  log?: Logger,
): Promise<Kv<Vm>[]> {
  try {
    return (await placedOn(store, host)).items;
  } catch (err) {
    if (!(err instanceof UnreadableError)) throw err;
    log?.warn("rebalance: reservations unreadable, VMs left", {
      host,
      reason: err.reason,
    });
    return [];
  }
}

/** One document per VM, the newest read (two hosts' reads may hold one). */
function latest(vms: Kv<Vm>[]): Kv<Vm>[] {
  const by = new Map<string, Kv<Vm>>();
  for (const v of vms) {
    const had = by.get(v.value.id);
    if (!had || BigInt(had.modRevision) < BigInt(v.modRevision)) {
      by.set(v.value.id, v);
    }
  }
  return [...by.values()];
}

/** The plan with its drains as `host.drain` task documents. */
function tasksOf(p: RoundPlan, config: Settings) {
  const drainTasks = p.drains.map((host) =>
    newTask({
      kind: "host.drain",
      target: "any",
      payload: { host, reason: `host ${host} is draining` },
      maxAttempts: config.tasks.maxAttempts,
    })
  );
  return { reason: p.reason, drainTasks, moves: p.moves };
}

async function round(
  store: Store,
  config: Settings,
  lease: string,
  opts: RebalanceOptions,
): Promise<Pick<RebalanceResult, "reason" | "drains" | "moves">> {
  const lock = keys.cronLock(REBALANCE);
  const p = await plan(store, config, opts.log);
  const drains: RebalanceResult["drains"] = [];
  for (const batch of chunks(p.drainTasks, ROUND_BATCH)) {
    const txn = store.txn().ifLease(lock, lease);
    for (const t of batch) enqueue(txn, t);
    if (!(await txn.commit()).ok) {
      return { reason: "lost the rebalance lock", drains, moves: [] };
    }
    drains.push(
      ...batch.map((t) => ({ host: String(t.payload.host), task: t.id })),
    );
  }
  let reason = p.reason;
  const moves: RebalanceResult["moves"] = [];
  const byId = new Map(p.vms.map((v) => [v.value.id, v]));
  for (const batch of chunks(p.moves, ROUND_BATCH)) {
    const txn = store.txn().ifLease(lock, lease);
    const tasks = batch.map((m) => {
      const vm = byId.get(m.vm)!;
      const t = newTask({
        kind: "vm.move",
        target: m.from,
        payload: { vm: m.vm, from: m.from, reason: `rebalancing: ${m.why}` },
        owner: vm.value.owner,
        maxAttempts: config.tasks.maxAttempts,
      });
      enqueue(txn.ifModRevision(vm.key, vm.modRevision), t);
      return { ...m, task: t.id };
    });
    if (!(await txn.commit()).ok) {
      reason = "VMs changed while planning; the next round tries again";
      break;
    }
    moves.push(...tasks);
  }
  // Every worker runs a round a minute: one that did nothing is no news.
  const level = drains.length || moves.length ? "info" : "debug";
  opts.log?.[level]("rebalance round", {
    by: opts.by,
    drains: drains.length,
    moves: moves.length,
    reason,
  });
  return { reason, drains, moves };
}

/** `items` in consecutive slices of at most `size`. */
function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) {
    out.push(items.slice(i, i + size));
  }
  return out;
}
