/**
 * The users ucloud keeps quota documents of, for admins, by name a page at
 * a time: every user with a usage document (`usage/<user>`: everyone who
 * created a VM or a network, written for all of them by the backfill) or
 * with limits an admin set (`quota/<user>`), each with the same quota view
 * as `showQuota`. Users who are only in the directory and hold nothing
 * have no documents and are not listed (their quota is the default).
 *
 * @example
 * ```ts
 * const page = await listQuotaUsers(deps, admin, { limit: 50 });
 * const next = await listQuotaUsers(deps, admin, { limit: 50, after: page.next! });
 * ```
 */
import { ForbiddenError } from "../../core/errors.ts";
import { idOf, keys } from "../../core/keys.ts";
import { QuotaDoc, Usage } from "../../core/quota_schemas.ts";
import type { Store } from "../../core/store.ts";
import type { Caller } from "../deps.ts";
import type { QuotaDeps } from "./limits.ts";
import { type QuotaView, showQuota } from "./manage.ts";

/** The largest page. */
export const MAX_USERS_PAGE = 200;

/** A page of users and the name to pass as `after` for the next one. */
export interface UserPage {
  items: QuotaView[];
  /** The last name of this page; null when no user follows. */
  next: string | null;
}

/**
 * The names under `prefix` after `after`, at most `limit` (unreadable
 * documents too: their users exist).
 */
async function namesAfter(
  { store }: QuotaDeps,
  prefix: string,
  schema: Parameters<Store["list"]>[1],
  after: string | undefined,
  limit: number,
): Promise<{ names: string[]; more: boolean }> {
  const r = await store.list(prefix, schema, {
    // "\0" sorts right after the name itself: the range starts past it.
    ...(after === undefined ? {} : { from: `${prefix}${after}\0` }),
    limit,
  });
  const names = [...r.items, ...r.unreadable].map((kv) => idOf(kv.key));
  return { names, more: r.more };
}

/**
 * A page of the users with usage or quota documents, by name, after
 * `after` (admins only: ForbiddenError).
 */
export async function listQuotaUsers(
  deps: QuotaDeps,
  who: Caller,
  q: { limit: number; after?: string },
): Promise<UserPage> {
  if (!who.admin) {
    throw new ForbiddenError(`Cannot list users: ${who.name} is not an admin`);
  }
  const limit = Math.max(1, Math.min(q.limit, MAX_USERS_PAGE));
  const [usage, quota] = await Promise.all([
    namesAfter(deps, keys.usage(""), Usage, q.after, limit),
    namesAfter(deps, keys.quota(""), QuotaDoc, q.after, limit),
  ]);
  const all = [...new Set([...usage.names, ...quota.names])].sort();
  const names = all.slice(0, limit);
  const more = all.length > limit || usage.more || quota.more;
  const items = await Promise.all(
    names.map((name) => showQuota(deps, who, name)),
  );
  return { items, next: more && names.length ? names.at(-1)! : null };
}
