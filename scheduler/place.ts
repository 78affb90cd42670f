/**
 * Placing one VM: the host choice (select.ts) over the placement cache or
 * over listings, checked against what the host has now, and the
 * reservation it writes. One copy for both placers: the API's inline
 * placement in `POST /v1/vms` ({@linkcode placeInCache}) and the
 * `vm.create` handler ({@linkcode pickHost}).
 *
 * A {@linkcode Placement} names the host, the lease of its serving
 * incarnation (which owns the VM: `status.incarnation`), the host's
 * reservation sums with the VM added and the VM's own entry.
 * {@linkcode reserveIn} adds it to the caller's transaction: it compares
 * the `alloc/<host>` revision the choice was made on and the host's
 * `alive/` lease, so two placers never overcommit a host and nothing lands
 * on a host whose failover may already have run (DESIGN.md rules 1 and
 * 7). `alloc/<host>` holds only sums, so that write does not grow with the
 * host's VMs; the entry is `allocvm/<host>/<vm>` (released by ledger.ts).
 *
 * @example
 * ```ts
 * const p = await pickHost(store, cache, vm.id, needOf(vm), "spread");
 * if ("reason" in p) console.log("pending:", p.reason);
 * else await reserveIn(store.txn().put(keys.vm(vm.id), placed), p).commit();
 * ```
 */
import { keys } from "../core/keys.ts";
import {
  Alive,
  Alloc,
  type AllocEntry,
  Host,
  serving,
} from "../core/schemas.ts";
import type { Store, Txn } from "../core/store.ts";
import { sleep } from "../core/watch.ts";
import type { CachedAlloc, PlacementCache } from "./cache.ts";
import { fits, isLive, without } from "./feasible.ts";
import type { Policy } from "./rank.ts";
import { type Candidate, type Need, reserve, sizeOf } from "./resources.ts";
import { choose } from "./select.ts";

/** How long a placer waits for a starting placement cache. */
export const CACHE_READY_MS = 1_000;
/** How often an inline placement is retried after a lost alloc compare. */
export const PLACE_ATTEMPTS = 5;
/** How often the handler re-picks from a lagging cache before listing. */
const CACHED_PICKS = 3;

/** A host chosen for a VM and what its reservation writes and compares. */
export interface Placement {
  vm: string;
  host: string;
  /** The lease of the host's serving incarnation (the `alive/` key's). */
  lease: string;
  /** The host's reservation sums with the VM added: the new `alloc/<host>`. */
  alloc: Alloc;
  /** What the VM reserves: its `allocvm/<host>/<vm>`. */
  entry: AllocEntry;
  /** The mod revision of `alloc/<host>` the choice read ("0": absent). */
  allocRevision: string;
}

/**
 * Adds the reservation to `txn`: compares the `alloc/<host>` revision the
 * choice was made on, the host's `alive/` lease and that the VM has no
 * entry on the host yet; writes the new sums and the VM's entry.
 */
export function reserveIn(txn: Txn, p: Placement): Txn {
  const entry = keys.allocVm(p.host, p.vm);
  return txn.ifModRevision(keys.alloc(p.host), p.allocRevision)
    // Only while the host's incarnation lives: never onto a host whose
    // failover may already have run.
    .ifLease(keys.alive(p.host), p.lease)
    .ifAbsent(entry)
    .put(keys.alloc(p.host), p.alloc)
    .put(entry, p.entry);
}

/** `cache` once it has listed everything (waits `CACHE_READY_MS`), else null. */
export async function readyCache(
  cache: PlacementCache | null | undefined,
): Promise<PlacementCache | null> {
  return cache && await cache.waitReady(CACHE_READY_MS) ? cache : null;
}

/**
 * The placement of `vm` on `host` per the cache now, or null when the
 * host no longer takes `need` (gone, not live, full). With `alloc`, room
 * is judged on those reservations (e.g. just read from etcd) instead of
 * the cached ones.
 */
export function confirm(
  cache: PlacementCache,
  vm: string,
  host: string,
  need: Need,
  alloc?: CachedAlloc,
): Placement | null {
  const c = cache.candidate(host);
  const alive = cache.aliveOf(host);
  if (!c || !alive || !isLive(c)) return null;
  if (!fits(alloc ? { host: c.host, alloc: alloc.value } : c, need)) {
    return null;
  }
  const a = alloc ?? cache.alloc(host);
  return {
    vm,
    host,
    lease: alive.lease,
    alloc: reserve(a.value, need),
    entry: sizeOf(need),
    allocRevision: a.modRevision,
  };
}

/** What one write of a placement did (see placeInCache()). */
export type Written<T> =
  /** Committed at `committed` (the txn's revision). */
  | { committed: string; value: T }
  /** Not committed, and the placer gives up with `value`. */
  | { value: T }
  /** Lost the race for the host: refresh its reservations and try again. */
  | "lost";

/**
 * Chooses a host from the cache and runs `write` (which commits the
 * reservation, see reserveIn()) under the cache's per-host lock, after
 * checking the host still takes the VM. A lost race refreshes the host's
 * reservations, backs off a little and chooses again, up to
 * `PLACE_ATTEMPTS` times; then a reason says a worker will place it.
 */
export async function placeInCache<T>(
  cache: PlacementCache,
  vm: string,
  need: Need,
  policy: Policy,
  write: (p: Placement) => Promise<Written<T>>,
): Promise<{ value: T } | { reason: string }> {
  for (let i = 0; i < PLACE_ATTEMPTS; i++) {
    const pick = choose(cache.candidates(), need, policy);
    if ("reason" in pick) return pick;
    const r = await cache.withHost(pick.host, async () => {
      // Another create of this process may have filled it meanwhile.
      const p = confirm(cache, vm, pick.host, need);
      if (!p) return "again" as const;
      const w = await write(p);
      if (w === "lost") {
        await cache.refreshAlloc(p.host);
        return w;
      }
      if ("committed" in w) cache.applyAlloc(p.host, p.alloc, w.committed);
      return { value: w.value };
    });
    if (typeof r === "object") return r;
    // Another process won the host: back off a little before retrying.
    if (r === "lost") await sleep(Math.random() * 4 * (i + 1));
  }
  return {
    reason: `placement lost the race for a host ${PLACE_ATTEMPTS} times; ` +
      "a worker will place it",
  };
}

/**
 * Chooses a host for `vm` (the `vm.create` handler): from the cache when
 * one is given (re-reading the chosen host's reservations, since the
 * cache may lag behind another placer), else, or when the cache keeps
 * lagging, from three listings. With `avoid` (a VM moving off that host)
 * the host is left out; when no other host fits it is chosen as usual,
 * with a note, and the reason of a VM that fits nowhere names the move.
 */
export async function pickHost(
  store: Store,
  cache: PlacementCache | null,
  vm: string,
  need: Need,
  policy: Policy,
  avoid?: string,
): Promise<(Placement & { note?: string }) | { reason: string }> {
  const place = async (avoid?: string) =>
    (cache ? await pickCached(store, cache, vm, need, policy, avoid) : null) ??
      await pickListed(store, vm, need, policy, avoid);
  const pick = await place(avoid);
  if (!("reason" in pick) || avoid === undefined) return pick;
  const again = await place();
  if ("reason" in again) {
    return { reason: `${again.reason}; moving off ${avoid}` };
  }
  return {
    ...again,
    note: `no host other than ${avoid} fits; placed on ${again.host}`,
  };
}

/** Chooses from the cache; re-reads the chosen host's reservations. */
async function pickCached(
  store: Store,
  cache: PlacementCache,
  vm: string,
  need: Need,
  policy: Policy,
  avoid?: string,
): Promise<Placement | { reason: string } | null> {
  for (let i = 0; i < CACHED_PICKS; i++) {
    const pick = choose(without(cache.candidates(), avoid), need, policy);
    if ("reason" in pick) return pick;
    // The cache may lag behind another placer: compare what etcd has now.
    const kv = await store.get(keys.alloc(pick.host), Alloc);
    if (kv) cache.applyAlloc(pick.host, kv.value, kv.modRevision);
    else await cache.refreshAlloc(pick.host);
    const p = confirm(cache, vm, pick.host, need, {
      value: kv?.value ?? null,
      modRevision: kv?.modRevision ?? "0",
    });
    if (p) return p;
  }
  return null;
}

/** Chooses from three listings (no cache in this process). */
async function pickListed(
  store: Store,
  vm: string,
  need: Need,
  policy: Policy,
  avoid?: string,
): Promise<Placement | { reason: string }> {
  const [hosts, alive, allocs] = await Promise.all([
    store.list(keys.hosts, Host),
    store.list(keys.alives, Alive),
    store.list(keys.allocs, Alloc),
  ]);
  const aliveOf = new Map(
    alive.items.map((a) => [a.key.slice(keys.alives.length), a.value]),
  );
  const allocOf = new Map(
    allocs.items.map((a) => [a.key.slice(keys.allocs.length), a]),
  );
  const candidates: Candidate[] = hosts.items.map((h) => ({
    host: h.value,
    alive: serving(aliveOf.get(h.value.name)),
    alloc: allocOf.get(h.value.name)?.value ?? null,
  }));
  const pick = choose(without(candidates, avoid), need, policy);
  if ("reason" in pick) return pick;
  const alloc = allocOf.get(pick.host);
  return {
    vm,
    host: pick.host,
    lease: aliveOf.get(pick.host)!.lease,
    alloc: reserve(alloc?.value ?? null, need),
    entry: sizeOf(need),
    allocRevision: alloc?.modRevision ?? "0",
  };
}
