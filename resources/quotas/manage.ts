/**
 * Showing and setting a user's quota: a user sees their own limits and
 * usage, an admin anyone's; only an admin sets a user's limits, which
 * replace what was set before (a field left out falls back to the config
 * default, null is unlimited).
 *
 * @example
 * ```ts
 * await setQuota(deps, admin, "bob", { cpus: 8 });
 * (await showQuota(deps, bob, "bob")).limits.cpus; // 8
 * ```
 */
import { ForbiddenError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import type { QuotaLimits, Usage } from "../../core/quota_schemas.ts";
import { type Caller, canSee } from "../deps.ts";
import {
  type Limits,
  limitsOf,
  type QuotaDeps,
  readQuotaDoc,
} from "./limits.ts";
import { readUsage } from "./usage.ts";

/** A user's quota as the API shows it. */
export interface QuotaView {
  user: string;
  /** The limits in effect (null: unlimited). */
  limits: Limits;
  /** What an admin set for this user (absent fields: the default). */
  own: QuotaLimits;
  /** What the user holds now. */
  usage: Usage;
}

/**
 * `user`'s limits and usage, for themselves or an admin (ForbiddenError
 * otherwise). Reads only: a user without a usage document gets it
 * computed, not written.
 */
export async function showQuota(
  { store, config }: QuotaDeps,
  who: Caller,
  user: string,
): Promise<QuotaView> {
  if (!canSee(who, user)) {
    throw new ForbiddenError(
      `Cannot show the quota of ${user}: ${who.name} is not an admin`,
    );
  }
  const [own, usage] = await Promise.all([
    readQuotaDoc(store, user),
    readUsage(store, user),
  ]);
  const mine = own?.value.limits ?? {};
  return {
    user,
    limits: limitsOf(config.quota, mine),
    own: mine,
    usage: usage.value,
  };
}

/**
 * Sets `user`'s own limits to `limits` (admins only: ForbiddenError),
 * replacing what was set; returns the quota as it is now.
 */
export async function setQuota(
  deps: QuotaDeps,
  who: Caller,
  user: string,
  limits: QuotaLimits,
): Promise<QuotaView> {
  if (!who.admin) {
    throw new ForbiddenError(
      `Cannot set the quota of ${user}: ${who.name} is not an admin`,
    );
  }
  await deps.store.txn().put(keys.quota(user), {
    limits,
    updatedBy: who.name,
    updatedAt: new Date().toISOString(),
  }).commit();
  return await showQuota(deps, who, user);
}
