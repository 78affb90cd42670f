/**
 * A user's limits: the config defaults (`quota`, core/config_quota.ts)
 * overridden by what an admin set for the user (`quota/<user>`), and the
 * check a create makes against them: over a limit is a QuotaError (403)
 * naming the resource, what is used, asked and allowed.
 *
 * @example
 * ```ts
 * const q = await chargeFor(deps, "alice", vmAmounts(vm.spec)); // QuotaError over
 * if ((await q.apply(store.txn()).commit()).ok) { ... }
 * ```
 */
import { QUOTA_RESOURCES, type QuotaConfig } from "../../core/config_quota.ts";
import { QuotaError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import {
  QuotaDoc,
  type QuotaLimits,
  type Usage,
} from "../../core/quota_schemas.ts";
import type { Kv, Store, Txn } from "../../core/store.ts";
import { changeUsage, readUsage, usageFresh, type UsageRead } from "./usage.ts";

/** Every resource's limit in effect; null: unlimited. */
export type Limits = Record<keyof Usage, number | null>;

/** What the quota functions read: the store and the config defaults. */
export interface QuotaDeps {
  store: Store;
  config: { quota?: QuotaConfig };
}

/** The limits in effect: the user's own where set, else the default. */
export function limitsOf(
  defaults: QuotaConfig | undefined,
  own: QuotaLimits | undefined,
): Limits {
  const out = {} as Limits;
  for (const r of QUOTA_RESOURCES) {
    const o = own?.[r];
    out[r] = o !== undefined ? o : defaults?.[r] ?? null;
  }
  return out;
}

/** Reads `user`'s own limits document (null: none set). */
export async function readQuotaDoc(
  store: Store,
  user: string,
): Promise<Kv<QuotaDoc> | null> {
  return await store.get(keys.quota(user), QuotaDoc);
}

/**
 * Throws QuotaError when adding `add` to `used` passes a limit of a
 * resource that `add` increases.
 */
export function checkQuota(
  owner: string,
  limits: Limits,
  used: Usage,
  add: Usage,
): void {
  for (const r of QUOTA_RESOURCES) {
    const allowed = limits[r];
    if (add[r] <= 0 || allowed === null || used[r] + add[r] <= allowed) {
      continue;
    }
    throw new QuotaError(
      { resource: r, used: used[r], requested: add[r], allowed },
      `Cannot create: over quota for ${r}: ${owner} uses ${used[r]}, ` +
        `asks for ${add[r]} more, allowed ${allowed}`,
    );
  }
}

/** A checked charge on a user's usage, to add to the create's txn. */
export interface Charge {
  /** The usage read (first, before anything the create counts). */
  usage: UsageRead;
  /** Adds the compares of usage and limits and the new usage to `txn`. */
  apply(txn: Txn): Txn;
  /** False when the usage or the limits changed since they were read. */
  fresh(): Promise<boolean>;
}

/**
 * Reads `owner`'s usage and limits and checks that `add` fits (QuotaError
 * otherwise); the returned charge writes it in the create's transaction.
 */
export async function chargeFor(
  { store, config }: QuotaDeps,
  owner: string,
  add: Usage,
): Promise<Charge> {
  const usage = await readUsage(store, owner);
  const own = await readQuotaDoc(store, owner);
  checkQuota(
    owner,
    limitsOf(config.quota, own?.value.limits),
    usage.value,
    add,
  );
  const quotaRev = own?.modRevision ?? "0";
  return {
    usage,
    apply: (txn) =>
      changeUsage(txn, usage, add).ifModRevision(keys.quota(owner), quotaRev),
    fresh: async () =>
      await usageFresh(store, usage) &&
      ((await readQuotaDoc(store, owner))?.modRevision ?? "0") === quotaRev,
  };
}
