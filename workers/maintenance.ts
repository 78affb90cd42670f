/**
 * The cron jobs of a worker, with `Deno.cron` (needs `--unstable-cron`): a
 * rebalance round (tasks/rebalance_round.ts, planned by
 * scheduler/round.ts) on `scheduler.rebalanceSchedule`, and the
 * maintenance round (tasks/maintenance_round.ts: task retention, etcd
 * defragmentation) on `maintenance.schedule`. Every worker schedules them;
 * a round's id is the minute, so only one worker runs each round in the
 * whole cluster.
 *
 * @example
 * ```ts
 * scheduleRebalance(store, config, { log, takesPart: () => registered });
 * scheduleMaintenance(store, config, { log, takesPart: () => registered });
 * ```
 */
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/log.ts";
import type { Store } from "../core/store.ts";
import { maintenanceOnce } from "../tasks/maintenance_round.ts";
import { rebalanceOnce, roundOf } from "../tasks/rebalance_round.ts";

export interface CronOptions {
  log: Logger;
  /** False while this worker must not run rounds (stopping, unregistered). */
  takesPart: () => boolean;
}

/** Registers the rebalance round with `Deno.cron` (see the module comment). */
export function scheduleRebalance(
  store: Store,
  config: Pick<Config, "scheduler" | "tasks" | "worker">,
  { log, takesPart }: CronOptions,
): void {
  Deno.cron(
    "ucloud-rebalance",
    config.scheduler.rebalanceSchedule,
    async () => {
      if (!takesPart()) return;
      try {
        const r = await rebalanceOnce(store, config, {
          by: config.worker.host,
          round: roundOf(new Date()),
          log,
        });
        if (!r.ran) log.debug("rebalance round skipped", { reason: r.reason });
      } catch (err) {
        log.warn("rebalance round failed", { error: String(err) });
      }
    },
  );
}

/** Registers the maintenance round with `Deno.cron` (module comment). */
export function scheduleMaintenance(
  store: Store,
  config: Pick<Config, "maintenance" | "worker">,
  { log, takesPart }: CronOptions,
): void {
  Deno.cron(
    "ucloud-maintenance",
    config.maintenance.schedule,
    async () => {
      if (!takesPart()) return;
      try {
        const r = await maintenanceOnce(store, config, {
          by: config.worker.host,
          round: roundOf(new Date()),
          log,
        });
        if (!r.ran) {
          log.debug("maintenance round skipped", { reason: r.reason });
        }
      } catch (err) {
        log.warn("maintenance round failed", { error: String(err) });
      }
    },
  );
}
