/**
 * The documents of per-user quotas: `usage/<user>`, what a user holds
 * (changed in the same transaction as every VM or network create and
 * delete, resources/quotas/usage.ts), and `quota/<user>`, the limits an
 * admin set for that user over the config defaults (core/config_quota.ts).
 *
 * @example
 * ```ts
 * QuotaLimits.parse({ cpus: 8, vms: null }); // 8 cores, VMs unlimited
 * ```
 */
import { z } from "zod";

const amount = z.number().int().min(0);

/** What a user holds: VM documents, their cores, MiB, disk MiB; networks. */
export const Usage = z.object({
  vms: amount,
  cpus: amount,
  memoryMiB: amount,
  diskMiB: amount,
  networks: amount,
});
export type Usage = z.infer<typeof Usage>;

/** Nothing held. */
export const NO_USAGE: Usage = {
  vms: 0,
  cpus: 0,
  memoryMiB: 0,
  diskMiB: 0,
  networks: 0,
};

const override = z.number().int().min(0).max(1_000_000_000).nullable()
  .optional();

/**
 * A user's own limits: a number (0: none allowed), null (unlimited), or
 * absent (the config default).
 */
export const QuotaLimits = z.object({
  vms: override,
  cpus: override,
  memoryMiB: override,
  diskMiB: override,
  networks: override,
}).strict();
export type QuotaLimits = z.infer<typeof QuotaLimits>;

/** `quota/<user>`: the limits an admin set, and who set them when. */
export const QuotaDoc = z.object({
  limits: QuotaLimits,
  updatedBy: z.string(),
  updatedAt: z.string(),
});
export type QuotaDoc = z.infer<typeof QuotaDoc>;

/**
 * `usage-backfilled`: every user holding anything has `usage/<user>`
 * (written once by a maintenance round, never deleted).
 */
export const UsageBackfilled = z.object({
  by: z.string(),
  at: z.string(),
  users: z.number().int().min(0),
});
export type UsageBackfilled = z.infer<typeof UsageBackfilled>;
