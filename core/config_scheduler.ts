/**
 * The `scheduler` section of the configuration (core/config.ts): the
 * placement policy and the rebalance rounds.
 *
 * @example
 * ```ts
 * const s = SchedulerConfig.parse({ policy: "pack" });
 * s.rebalanceMaxMoves; // 2
 * ```
 */
import { z } from "zod";

export const SchedulerConfig = z.object({
  /** spread: the host with the most room; pack: the least that fits. */
  policy: z.enum(["spread", "pack"]).default("spread"),
  /** When the rebalancer runs on every worker (Deno.cron syntax, UTC). */
  rebalanceSchedule: z.string().regex(
    /^\S+( \S+){4}$/,
    "scheduler.rebalanceSchedule must be a cron expression of 5 fields",
  ).default("* * * * *"),
  /** At most this many VMs moved per rebalance round (0: never). */
  rebalanceMaxMoves: z.number().int().min(0).max(100).default(2),
  /**
   * Move only while the most loaded live host's load (the used share of
   * its capacity, 0..1) exceeds the least loaded's by more than this.
   */
  rebalanceThreshold: z.number().min(0).max(1).default(0.25),
  /**
   * Rebalance rounds may stop running VMs and start them elsewhere; off:
   * only stopped VMs and those whose spec says `movable` move.
   */
  rebalanceRunning: z.boolean().default(false),
});
export type SchedulerConfig = z.infer<typeof SchedulerConfig>;
