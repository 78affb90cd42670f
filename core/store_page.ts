/**
 * Paged listings of a prefix, in key order (`ascendingPage`), newest
 * first for keys that carry their creation time (`descendingPage`), or
 * through an index of keys naming documents (`indexedPage`): at most
 * `limit` matching documents and at most `scanMax` keys read per page, and
 * the position where the next page starts (`next`, null after the last
 * page). A page reads the latest revision: a document that exists and
 * keeps its key from the first page to the last is listed exactly once,
 * one added or removed meanwhile may be listed or not. A page that reached
 * `scanMax` before `limit` matches ends early, with fewer items and a
 * position: the cost of one request never grows with the prefix.
 *
 * @example
 * ```ts
 * const p = await ascendingPage(store, keys.vms, Vm, { limit: 100 });
 * const q = await ascendingPage(store, keys.vms, Vm, { limit: 100, position: p.next! });
 * ```
 */
import { z } from "zod";
import { idOf } from "./keys.ts";
import type { Kv, Store } from "./store.ts";

/** Keys one page reads at most (matching or not). */
export const PAGE_SCAN_MAX = 1000;
/** An index entry: only its key counts. */
const ENTRY = z.unknown();
/** Range requests one newest-first page sends at most. */
const MAX_REQUESTS = 64;
/** The smallest read of one request, so sparse matches need few requests. */
const MIN_CHUNK = 100;
/** The first time window of a newest-first page. */
const FIRST_SPAN_MS = 60_000;

export interface PageOptions<T> {
  /** Matching documents per page. */
  limit: number;
  /** Where this page starts: a previous page's `next`. */
  position?: string;
  /** Which documents count; all when absent. */
  match?: (value: T) => boolean;
  scanMax?: number;
  /** Read at this revision (`indexedPage`): a previous page's `revision`. */
  revision?: string;
}

export interface Page<T> {
  items: Kv<T>[];
  /** Where the next page starts; null when this was the last. */
  next: string | null;
  /** The revision `indexedPage` read its keys and documents at. */
  revision?: string;
}

const chunkOf = (limit: number, got: number, budget: number) =>
  Math.max(1, Math.min(budget, Math.max(limit - got, MIN_CHUNK)));

/**
 * A page in ascending key order. `next` is the key the next page starts at
 * (inclusive): just after the last key this page read.
 */
export async function ascendingPage<T>(
  store: Store,
  prefix: string,
  schema: z.ZodType<T>,
  opts: PageOptions<T>,
): Promise<Page<T>> {
  const scanMax = opts.scanMax ?? PAGE_SCAN_MAX;
  const out: Kv<T>[] = [];
  let from = opts.position ?? prefix;
  let read = 0;
  for (;;) {
    const page = await store.list(prefix, schema, {
      from,
      limit: chunkOf(opts.limit, out.length, scanMax - read),
    });
    read += page.items.length + page.unreadable.length;
    const last = lastKey(page.items, page.unreadable);
    for (const kv of page.items) {
      if (opts.match && !opts.match(kv.value)) continue;
      out.push(kv);
      if (out.length === opts.limit) {
        const end = kv.key === last && !page.more;
        return { items: out, next: end ? null : `${kv.key}\0` };
      }
    }
    if (!page.more || last === null) return { items: out, next: null };
    from = `${last}\0`;
    if (read >= scanMax) return { items: out, next: from };
  }
}

/**
 * A page of the documents an index names, in the index's key order: the
 * keys under `index` (their last segment an id) are read `limit` at a time
 * and their documents by key (`docKey(id)`, `Store.getMany`), so the cost
 * grows with the page and the index prefix, not with the documents' whole
 * prefix. An entry whose document is gone (or unreadable, reported) is
 * skipped; `match` is checked on the document, which stays the authority.
 * `position` and `next` are keys under `index`, as in `ascendingPage`.
 * Keys and documents are read at one revision (`opts.revision`, or that of
 * the first read), returned as `revision` so further pages can use it.
 */
export async function indexedPage<T>(
  store: Store,
  index: string,
  docKey: (id: string) => string,
  schema: z.ZodType<T>,
  opts: PageOptions<T>,
): Promise<Page<T>> {
  const scanMax = opts.scanMax ?? PAGE_SCAN_MAX;
  const out: Kv<T>[] = [];
  let from = opts.position ?? index;
  let read = 0;
  let revision = opts.revision;
  for (;;) {
    const page = await store.list(index, ENTRY, {
      from,
      limit: Math.max(1, Math.min(scanMax - read, opts.limit - out.length)),
      revision,
    });
    revision ??= page.revision;
    const entries = [...page.items, ...page.unreadable].map((e) => e.key)
      .sort();
    read += entries.length;
    const docs = await store.getMany(
      entries.map((k) => docKey(idOf(k))),
      schema,
      { revision },
    );
    const byKey = new Map(docs.items.map((kv) => [kv.key, kv]));
    for (const entry of entries) {
      const kv = byKey.get(docKey(idOf(entry)));
      if (!kv || (opts.match && !opts.match(kv.value))) continue;
      out.push(kv);
      if (out.length === opts.limit) {
        const end = entry === entries.at(-1) && !page.more;
        return { items: out, next: end ? null : `${entry}\0`, revision };
      }
    }
    const last = entries.at(-1);
    if (!page.more || last === undefined) {
      return { items: out, next: null, revision };
    }
    from = `${last}\0`;
    if (read >= scanMax) return { items: out, next: from, revision };
  }
}

/** How a newest-first listing maps its keys to creation times. */
export interface TimeKeys {
  /** The first key created at `ms` or later. */
  keyAt: (ms: number) => string;
  /** When the document of `key` was created; null for a key without it. */
  timeOf: (key: string) => number | null;
}

/**
 * A page newest first (descending key order) of keys that sort by creation
 * time. etcd sorts a descending range only after reading all of it, so
 * this reads ascending windows of time backwards from the position: each
 * window is counted first (keys only, nothing read), narrowed to about
 * half a read when it holds more, widened after a sparse one. Only more
 * than one read's keys in one millisecond are read sorted descending. All
 * requests of a page read the revision of its first, so a window holds
 * what its count said however fast tasks come and go: each page completes
 * at least one window (at most 16 narrowings and one read), and a page
 * that ends on its budget returns where it stopped. `next` is the key the
 * next page ends before (exclusive); null only when nothing older exists.
 */
export async function descendingPage<T>(
  store: Store,
  prefix: string,
  schema: z.ZodType<T>,
  opts: PageOptions<T> & TimeKeys,
): Promise<Page<T>> {
  const scanMax = opts.scanMax ?? PAGE_SCAN_MAX;
  const out: Kv<T>[] = [];
  let hi = opts.position ?? null;
  let span = FIRST_SPAN_MS;
  let read = 0;
  let requests = 0;
  let revision: string | undefined;
  do {
    // From the top (or a key without a time) the window ends at the prefix's end.
    const hiMs = (hi === null ? null : opts.timeOf(hi)) ?? Date.now();
    const timed = hiMs - span > 0 ? opts.keyAt(hiMs - span) : prefix;
    // A position below every timed key: the rest of the prefix at once.
    const below = hi !== null && timed >= hi;
    const lo = below ? prefix : timed;
    const chunk = chunkOf(opts.limit, out.length, scanMax - read);
    const range = { from: lo, before: hi ?? undefined, revision };
    const counted = await store.countAt(prefix, range);
    revision = counted.revision;
    const n = counted.count;
    requests++;
    if (n > chunk && span > 1 && !below) {
      span = Math.max(1, Math.floor((span * chunk) / (2 * n)));
      continue;
    }
    const sorted = n > chunk;
    const atStart = !sorted && lo === prefix;
    if (n === 0) {
      if (atStart) return { items: out, next: null };
      hi = lo;
      span *= 2;
      continue;
    }
    const page = await store.list(prefix, schema, {
      ...range,
      limit: chunk,
      order: sorted ? "descend" : "ascend",
    });
    requests++;
    read += page.items.length + page.unreadable.length;
    const items = sorted ? page.items : page.items.toReversed();
    const lowest = firstKey(page.items, page.unreadable, sorted);
    for (const kv of items) {
      if (opts.match && !opts.match(kv.value)) continue;
      out.push(kv);
      if (out.length === opts.limit) {
        const end = atStart && kv.key === lowest;
        return { items: out, next: end ? null : kv.key };
      }
    }
    if (atStart) return { items: out, next: null };
    if (sorted) hi = lowest ?? lo;
    else {
      hi = lo;
      if (n < chunk / 2) span *= 2;
    }
  } while (hi === null || (read < scanMax && requests < MAX_REQUESTS));
  return { items: out, next: hi };
}

function lastKey(a: { key: string }[], b: { key: string }[]): string | null {
  const keys = [a.at(-1)?.key, b.at(-1)?.key].filter((k) => k !== undefined);
  return keys.length ? keys.sort().at(-1)! : null;
}

/** The lowest key of a read, ascending or (`descending`) not. */
function firstKey(
  a: { key: string }[],
  b: { key: string }[],
  descending: boolean,
): string | null {
  const ends = descending ? [a.at(-1), b.at(-1)] : [a[0], b[0]];
  const keys = ends.filter((e) => e !== undefined).map((e) => e.key);
  return keys.length ? keys.sort()[0] : null;
}
