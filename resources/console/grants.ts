/**
 * The relay's side of a console grant (resources/console/tickets.ts):
 * `consumeGrant` takes the grant `id` of host `host` once, in a transaction
 * comparing its mod revision, so a grant opens one connection at most.
 *
 * @example
 * ```ts
 * const grant = await consumeGrant(store, "h1", id); // null: unknown or used
 * ```
 */
import {
  type ConsoleGrant,
  ConsoleGrant as Schema,
} from "../../core/console_schemas.ts";
import { keys } from "../../core/keys.ts";
import type { Store } from "../../core/store.ts";

/** A grant id: 32 base64url characters (192 bits). */
export const GRANT_RE = /^[A-Za-z0-9_-]{32}$/;

/** Consumes grant `id` of `host`; null when it is unknown, expired or used. */
export async function consumeGrant(
  store: Store,
  host: string,
  id: string,
): Promise<ConsoleGrant | null> {
  if (!GRANT_RE.test(id)) return null;
  const key = keys.consoleGrant(host, id);
  const kv = await store.get(key, Schema);
  if (!kv) return null;
  const r = await store.txn().ifModRevision(key, kv.modRevision).delete(key)
    .commit();
  return r.ok ? kv.value : null;
}
