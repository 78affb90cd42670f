/**
 * The `quota` section of the configuration (core/config.ts): what every
 * user may hold at most, unless an admin sets that user's own limits
 * (`PUT /v1/users/{name}/quota`, resources/quotas/). A limit that is
 * absent is unlimited; 0 allows none. Every default is absent, so a
 * cloud without a `quota` section behaves as before.
 *
 * What counts: every VM document of the user until a `vm.delete` removes
 * it (a VM being deleted still counts), with its `cpus`, `memory` (MiB)
 * and local `disk` (GiB as MiB; a VM on its image's own size counts 0),
 * and every network the user owns.
 *
 * @example
 * ```ts
 * const q = QuotaConfig.parse({ vms: 20, cpus: 40 });
 * q.memoryMiB; // undefined: unlimited
 * ```
 */
import { z } from "zod";

/** One limit: a count or amount of at least 0. */
const limit = z.number().int().min(0);

/** The resources a quota limits, in the order messages list them. */
export const QUOTA_RESOURCES = [
  "vms",
  "cpus",
  "memoryMiB",
  "diskMiB",
  "networks",
] as const;
/** One resource a quota limits. */
export type QuotaResource = typeof QUOTA_RESOURCES[number];

/** The default limits of every user (each absent: unlimited). */
export const QuotaConfig = z.object({
  /** VM documents (any phase, also while being deleted). */
  vms: limit.optional(),
  /** Cores of those VMs (`spec.cpus`). */
  cpus: limit.optional(),
  /** Memory of those VMs in MiB (`spec.memory`). */
  memoryMiB: limit.optional(),
  /** Local disk of those VMs in MiB (`spec.disk` GiB × 1024). */
  diskMiB: limit.optional(),
  /** Networks the user owns. */
  networks: limit.optional(),
}).strict();
export type QuotaConfig = z.infer<typeof QuotaConfig>;
