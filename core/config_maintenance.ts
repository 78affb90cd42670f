/**
 * The `maintenance` section of the configuration (core/config.ts): when the
 * maintenance round runs (tasks/maintenance_round.ts), how long finished
 * tasks are kept, when an etcd member is defragmented, and the compaction
 * and quota of the embedded etcd (`deno task up`).
 *
 * @example
 * ```ts
 * const m = MaintenanceConfig.parse({ taskRetentionSeconds: 86_400 });
 * ```
 */
import { z } from "zod";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** etcd's `--auto-compaction-retention`: a duration (periodic) or a count. */
const RETENTION_RE = /^\d+(ms|s|m|h)?$/;

export const MaintenanceConfig = z.object({
  /**
   * When the maintenance round runs on every worker (Deno.cron syntax,
   * UTC); only one worker in the cluster runs each round.
   */
  schedule: z.string().regex(
    /^\S+( \S+){4}$/,
    "maintenance.schedule must be a cron expression of 5 fields",
  ).default("*/10 * * * *"),
  /** A finished task is deleted this long after it finished (7 days). */
  taskRetentionSeconds: z.number().int().min(1).default(7 * 86_400),
  /**
   * An etcd member is defragmented when its free space (file size minus
   * size in use) is at least this share of its file ...
   */
  defragFreeRatio: z.number().min(0).max(1).default(0.5),
  /** ... and at least this many bytes. */
  defragMinFreeBytes: z.number().int().min(0).default(64 * MiB),
  /** The embedded etcd of `deno task up` (core/etcd_server.ts). */
  embeddedEtcd: z.object({
    /** `--auto-compaction-mode`: periodic (a duration) or revision (a count). */
    compactionMode: z.enum(["periodic", "revision"]).default("periodic"),
    /** `--auto-compaction-retention`: history kept, e.g. `1h` or `100000`. */
    compactionRetention: z.string().regex(
      RETENTION_RE,
      "maintenance.embeddedEtcd.compactionRetention must be a number or a duration like 1h",
    ).default("1h"),
    /** `--quota-backend-bytes`: writes fail (alarm NOSPACE) past this. */
    quotaBytes: z.number().int().min(MiB).max(8 * GiB).default(2 * GiB),
  }).prefault({}),
});
export type MaintenanceConfig = z.infer<typeof MaintenanceConfig>;
