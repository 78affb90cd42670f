/**
 * The scheduler: everything that decides where a VM runs. Feasibility
 * (feasible.ts), ranking (rank.ts) and selection (select.ts) over what
 * hosts have (resources.ts); the watched placement cache (cache.ts); one
 * VM's placement and reservation (place.ts) and its release (ledger.ts);
 * and the plans of a
 * maintenance round: drains (drain.ts), rebalancing (rebalance.ts) and
 * the round that combines them (round.ts). Imports only core/; the API,
 * the task handlers and the cron job call it.
 *
 * @example
 * ```ts
 * import { choose, needOf } from "../scheduler/mod.ts";
 * const r = choose(candidates, needOf(vm), "spread");
 * ```
 */
export {
  type CachedAlloc,
  PlacementCache,
  type PlacementCacheOptions,
} from "./cache.ts";
export { type DrainPlan, drainPlan } from "./drain.ts";
export { releaseIn, reservedOn } from "./ledger.ts";
export {
  feasible,
  fits,
  hasBridges,
  isLive,
  noFitReason,
  without,
} from "./feasible.ts";
export {
  CACHE_READY_MS,
  confirm,
  pickHost,
  PLACE_ATTEMPTS,
  placeInCache,
  type Placement,
  readyCache,
  reserveIn,
  type Written,
} from "./place.ts";
export {
  NEAR_TIE,
  POLICIES,
  type Policy,
  rank,
  type Ranked,
  score,
} from "./rank.ts";
export {
  load,
  mayMove,
  type PlannedMove,
  planRebalance,
  type RebalanceOptions,
  type RebalancePlan,
} from "./rebalance.ts";
export {
  type Candidate,
  effective,
  free,
  legacyIds,
  type Need,
  needOf,
  NO_ALLOC,
  release,
  reserve,
  sizeOf,
  SUMS_ENTRY,
  sumsOf,
  usage,
} from "./resources.ts";
export { isMove, planRound, type RoundInput, type RoundPlan } from "./round.ts";
export { choose } from "./select.ts";
