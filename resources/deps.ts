/**
 * What every resource function (resources/vms/, resources/networks/)
 * takes besides its input: the store and the config it reads, and the
 * caller it acts for, with the one visibility rule they share.
 *
 * @example
 * ```ts
 * const who: Caller = { name: "alice", admin: false };
 * canSee(who, vm.owner); // true for alice's VMs
 * ```
 */
import type { Config } from "../core/config.ts";
import type { Store } from "../core/store.ts";

/** Who a change is made for: the user's name and whether it is an admin. */
export interface Caller {
  name: string;
  admin: boolean;
  /** The admin acting for `name` (header `X-Act-As`), if any. */
  actor?: string;
}

/** The store and the config sections the resource functions read. */
export interface ResourceDeps {
  store: Store;
  /**
   * Task settings; the scheduler's, network and images defaults when
   * absent; no quota section: unlimited.
   */
  config:
    & Pick<Config, "tasks">
    & Partial<Pick<Config, "scheduler" | "network" | "images" | "quota">>;
}

/** True when `who` may see a document owned by `owner`. */
export function canSee(who: Caller, owner: string | undefined): boolean {
  return who.admin || owner === who.name;
}
