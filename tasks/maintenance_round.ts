/**
 * The maintenance round that keeps etcd bounded over time, run by
 * `Deno.cron` on every worker (workers/maintenance.ts,
 * `maintenance.schedule`): it deletes finished tasks older than
 * `maintenance.taskRetentionSeconds` (tasks/retention.ts), writes every
 * user's usage document once in the cluster's life (tasks/usage_backfill.ts),
 * and every VM's owner index entry likewise (tasks/vm_owner_backfill.ts),
 * then defragments the etcd members whose free space passes
 * `maintenance.defragFreeRatio` and `maintenance.defragMinFreeBytes`, one
 * at a time, followers first and the leader last
 * (tasks/maintenance_defrag.ts). etcd
 * compacts its history itself (`--auto-compaction-*`, core/etcd_server.ts;
 * an external cluster is set up so, see README): compaction frees pages in
 * the file, defragmentation gives them back.
 *
 * Like the rebalance round (tasks/rebalance_round.ts), one round runs at a
 * time in the cluster: it holds `cron/maintenance`, created if absent and
 * bound to a lease of its own, and a scheduled round also creates
 * `cron-round/maintenance/<round>` with it, left to expire with the lease,
 * so of all workers whose cron fires for the same minute only the first
 * runs it. The lock's lease is kept alive while the round runs (a round
 * may outlast its TTL); every delete compares it, and the defragmentation
 * checks it before each member: a round that lost its lock stops.
 *
 * @example
 * ```ts
 * const r = await maintenanceOnce(store, config, { by: "h1" });
 * console.log(r.ran, r.etcd);
 * ```
 */
import type { Config } from "../core/config.ts";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { CronLock } from "../core/schemas.ts";
import { Session } from "../core/session.ts";
import type { Store } from "../core/store.ts";
import { defragMembers, type MemberResult } from "./maintenance_defrag.ts";
import { collectTasks, type RetentionResult } from "./retention.ts";
import { type BackfillResult, backfillUsage } from "./usage_backfill.ts";
import {
  backfillOwners,
  type OwnerBackfillResult,
} from "./vm_owner_backfill.ts";

/** The job name: lock `cron/maintenance`, rounds `cron-round/maintenance/`. */
export const MAINTENANCE = "maintenance";

/**
 * The lock's lease, seconds: how long a crashed round blocks others, and
 * how long a scheduled round's key stays (one key per round, expiring).
 */
export const ROUND_TTL_SECONDS = 600;

/** What a round did. */
export interface MaintenanceResult {
  /** False when another round held the lock (or this round already ran). */
  ran: boolean;
  by: string;
  at: string;
  round?: string;
  reason: string;
  /** What task retention did; absent when the round did not run. */
  tasks?: RetentionResult;
  /** What the usage backfill did; absent when it did not run. */
  usage?: BackfillResult;
  /** What the owner index backfill did; absent when it did not run. */
  owners?: OwnerBackfillResult;
  etcd: MemberResult[];
}

export interface MaintenanceOptions {
  /** Who runs the round (a worker's host name, or `api:<principal>`). */
  by: string;
  /** A scheduled round's id (e.g. the minute): each round runs once. */
  round?: string;
  log?: Logger;
  now?: Date;
  /** The lock's lease TTL (test seam); default {@linkcode ROUND_TTL_SECONDS}. */
  lockTtlSeconds?: number;
  /** Awaited between task retention and defragmentation (test seam). */
  afterTasks?: () => Promise<void>;
}

type Settings = Pick<Config, "maintenance">;

/** Runs one maintenance round (see the module comment). */
export async function maintenanceOnce(
  store: Store,
  config: Settings,
  opts: MaintenanceOptions,
): Promise<MaintenanceResult> {
  const now = opts.now ?? new Date();
  const base = {
    by: opts.by,
    at: now.toISOString(),
    ...(opts.round ? { round: opts.round } : {}),
  };
  const lock = keys.cronLock(MAINTENANCE);
  const ttlSeconds = opts.lockTtlSeconds ?? ROUND_TTL_SECONDS;
  // Kept alive every TTL/3 while the round runs.
  const session = await Session.open(store, {
    ttlSeconds,
    marginMs: Math.floor(ttlSeconds * 1000 / 3),
    log: opts.log,
  });
  const lease = session.lease;
  let release = true;
  try {
    const take = store.txn().ifAbsent(lock)
      .put(lock, { by: opts.by, at: base.at }, { lease });
    if (opts.round) {
      const k = keys.cronRound(MAINTENANCE, opts.round);
      take.ifAbsent(k).put(k, { by: opts.by, at: base.at }, { lease });
    }
    if (!(await take.commit()).ok) {
      const held = await store.get(lock, CronLock);
      const reason = held
        ? `another maintenance round is running (${held.value.by} since ${held.value.at})`
        : opts.round
        ? `round ${opts.round} already ran`
        : "another maintenance round just ended; try again";
      return { ...base, ran: false, reason, etcd: [] };
    }
    // A scheduled round keeps its lease: the round key expires with it.
    release = !opts.round;
    try {
      const fence = () => store.txn().ifLease(lock, lease);
      const tasks = await collectTasks(store, {
        retentionMs: config.maintenance.taskRetentionSeconds * 1000,
        now,
        fence,
      });
      const lost = { ...base, ran: true, reason: "lost the lock", tasks };
      if (tasks.fenced) return { ...lost, etcd: [] };
      const usage = await backfillUsage(store, { by: opts.by, fence, now });
      if (usage.fenced) return { ...lost, usage, etcd: [] };
      const owners = await backfillOwners(store, { by: opts.by, fence, now });
      if (owners.fenced) return { ...lost, usage, owners, etcd: [] };
      await opts.afterTasks?.();
      const held = async () => (await fence().commit()).ok;
      if (!(await held())) return { ...lost, usage, owners, etcd: [] };
      const etcd = await defragMembers(store, config.maintenance, {
        log: opts.log,
        fence: held,
      });
      if (etcd.some((m) => m.skipped === "lost the lock")) {
        return { ...lost, usage, owners, etcd };
      }
      const n = etcd.filter((m) => m.defragmented).length;
      const level = n || tasks.deleted || usage.written || owners.written
        ? "info"
        : "debug";
      opts.log?.[level]("maintenance round", {
        by: opts.by,
        tasksDeleted: tasks.deleted,
        tasksKept: tasks.kept,
        usageWritten: usage.written,
        ownersWritten: owners.written,
        defragmented: n,
      });
      return {
        ...base,
        ran: true,
        reason: "done",
        tasks,
        usage,
        owners,
        etcd,
      };
    } finally {
      await store.txn().ifLease(lock, lease).delete(lock).commit();
    }
  } finally {
    await session.close({ revoke: release });
  }
}
