/**
 * The maintenance cron job of a worker: runs a rebalance round
 * (tasks/rebalance_round.ts, planned by scheduler/round.ts) on
 * `scheduler.rebalanceSchedule` with `Deno.cron` (needs
 * `--unstable-cron`). Every worker schedules it; the round's id is the
 * minute, so only one worker runs each round in the whole cluster.
 *
 * @example
 * ```ts
 * scheduleRebalance(store, config, { log, takesPart: () => registered });
 * ```
 */
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/log.ts";
import type { Store } from "../core/store.ts";
import { rebalanceOnce, roundOf } from "../tasks/rebalance_round.ts";

export interface RebalanceCronOptions {
  log: Logger;
  /** False while this worker must not run rounds (stopping, unregistered). */
  takesPart: () => boolean;
}

/** Registers the rebalance round with `Deno.cron` (see the module comment). */
export function scheduleRebalance(
  store: Store,
  config: Pick<Config, "scheduler" | "tasks" | "worker">,
  { log, takesPart }: RebalanceCronOptions,
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
