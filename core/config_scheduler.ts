/**
 * The `scheduler` section of the configuration (core/config.ts): the
 * placement policy, the rebalance rounds, what a host offers to placement
 * (allocation ratios and memory kept for the host itself), and how VMs
 * that fit nowhere wait (back-off, a bound per user).
 *
 * The allocation settings are read by each host's worker from its own
 * configuration (file or environment) and written into its registration
 * document (`host/<name>` `allocation`): the shared file gives the default,
 * a host's own file or environment overrides it, and every placer (API
 * replicas, workers, cron) reads the same values from etcd.
 *
 * @example
 * ```ts
 * const s = SchedulerConfig.parse({ cpuAllocationRatio: 8 });
 * s.memoryAllocationRatio; // 1
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
  /**
   * VM cores placed per host core (Nova's `cpu_allocation_ratio`): a host
   * of 2 cores takes VMs of 8 cores in all with 4.
   */
  cpuAllocationRatio: z.number().positive().max(64).default(4),
  /** VM memory placed per MiB of the host's memory left after the reserve. */
  memoryAllocationRatio: z.number().positive().max(16).default(1),
  /** Memory kept for the host itself (OS, worker, qemu overhead), in MiB. */
  reservedMemoryMiB: z.number().int().min(0).default(512),
  /**
   * A VM that fits on no host is tried again after 0.25 s, doubling per
   * try up to this; sooner when a host gains room it fits in.
   */
  placementRetryMaxSeconds: z.number().int().min(1).max(3600).default(60),
  /**
   * At most this many of a user's VMs wait for capacity (pending); one
   * more that fits nowhere is refused (409). 0: no bound.
   */
  maxPendingVmsPerUser: z.number().int().min(0).default(10),
});
export type SchedulerConfig = z.infer<typeof SchedulerConfig>;
