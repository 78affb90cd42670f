/**
 * Reading VMs as a caller may see them: its own, every VM for an admin. A
 * VM the caller may not see is not found, also when it exists. Listings
 * come in pages (core/store_page.ts) with a sealed continue token
 * (core/page_token.ts). One owner's VMs (a user's own listing, or
 * `owner`) are read through the owner index (owner_index.ts): that
 * owner's `vmowner/<owner>/` keys and their documents, so the cost grows
 * with their VMs, not the cluster's. Until the index is backfilled, and
 * for an admin's listing of everyone, pages read `vm/` keys in order: a
 * page reads at most `PAGE_SCAN_MAX` keys of everyone's and may end early
 * with fewer items and a token. Both order by VM id and the token holds a
 * position in `vm/`, so a listing begun before the backfill goes on after
 * it.
 *
 * @example
 * ```ts
 * const { items, continue: next } = await listVms(store, who, { limit: 100 });
 * const vm = await showVm(store, who, "vm-1"); // NotFoundError if hidden
 * ```
 */
import { NotFoundError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { Vm } from "../../core/schemas.ts";
import { openPosition, sealPosition } from "../../core/page_token.ts";
import type { Kv, Store } from "../../core/store.ts";
import {
  ascendingPage,
  indexedPage,
  type Page,
} from "../../core/store_page.ts";
import { type Caller, canSee } from "../deps.ts";
import { ownerIndexReady } from "./owner_index.ts";

/** Reads a VM `who` may see, with its revision; NotFoundError otherwise. */
export async function readVm(
  store: Store,
  who: Caller,
  id: string,
): Promise<Kv<Vm>> {
  const vm = await store.get(keys.vm(id), Vm);
  if (!vm || !canSee(who, vm.value.owner)) throw new NotFoundError("vm", id);
  return vm;
}

/** Which VMs a listing asks for, and where its page starts. */
export interface VmQuery {
  limit: number;
  /** The token of the previous page. */
  continue?: string;
  /** Only this owner's VMs (a user: only their own anyway). */
  owner?: string;
}

/** A page of VMs `who` may see, oldest first; `continue` null at the end. */
export async function listVms(
  store: Store,
  who: Caller,
  q: VmQuery,
): Promise<{ items: Vm[]; continue: string | null }> {
  const position = q.continue === undefined
    ? undefined
    : await openPosition(store, keys.vms, q.continue);
  if (q.owner !== undefined && !canSee(who, q.owner)) {
    return { items: [], continue: null };
  }
  const owner = q.owner ?? (who.admin ? undefined : who.name);
  const page = owner !== undefined && await ownerIndexReady(store)
    ? await ownedPage(store, owner, q.limit, position)
    : await ascendingPage(store, keys.vms, Vm, {
      limit: q.limit,
      position,
      match: owner === undefined ? undefined : (v) => v.owner === owner,
    });
  return {
    items: page.items.map((kv) => kv.value),
    continue: page.next === null
      ? null
      : await sealPosition(store, keys.vms, page.next),
  };
}

/**
 * A page of `owner`'s VMs read through the owner index; `position` and
 * `next` are positions in `vm/` (the same VM ids under `vm/` and under
 * `vmowner/<owner>/`).
 */
async function ownedPage(
  store: Store,
  owner: string,
  limit: number,
  position: string | undefined,
): Promise<Page<Vm>> {
  const index = keys.vmsOwnedBy(owner);
  const page = await indexedPage(store, index, keys.vm, Vm, {
    limit,
    position: position === undefined
      ? undefined
      : index + position.slice(keys.vms.length),
    match: (v) => v.owner === owner,
  });
  return {
    items: page.items,
    next: page.next === null ? null : keys.vms + page.next.slice(index.length),
  };
}

/** One VM `who` may see; NotFoundError otherwise. */
export async function showVm(
  store: Store,
  who: Caller,
  id: string,
): Promise<Vm> {
  return (await readVm(store, who, id)).value;
}
