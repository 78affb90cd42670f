/**
 * Lists a prefix (in pages of `LIST_PAGE` keys at one revision), then
 * watches it from that revision + 1; on any watch error (compacted
 * revision, cancel, lost stream) it lists again and hands the caller a
 * fresh snapshot (DESIGN.md rules 4 and 5). Runs until
 * `signal` aborts. Values come raw; `decodeRaw` parses one the way the
 * store does, skipping (and reporting) a document it cannot read.
 *
 * @example
 * ```ts
 * await watchPrefix(store, "queue/h1/", {
 *   signal,
 *   onReset: (items) => resync(items),
 *   onEvent: (ev) => ev.type === "put" ? add(ev.key) : remove(ev.key),
 * });
 * ```
 */
import { Buffer } from "node:buffer";
import type { IKeyValue } from "etcd3";
import type { z } from "zod";
import { decodeDocument } from "./documents.ts";
import type { Kv, Store, Unreadable } from "./store.ts";
import { prefixEnd } from "./store.ts";
import type { Logger } from "./log.ts";
import { reportUnreadable } from "./unreadable.ts";

export interface RawKv {
  key: string;
  value: string;
  modRevision: string;
  createRevision?: string;
  lease?: string;
}

export interface WatchEvent extends RawKv {
  type: "put" | "delete";
}

export interface WatchOptions {
  signal: AbortSignal;
  /** Called with the full listing at start and after every watch error. */
  onReset: (items: RawKv[], revision: string) => void | Promise<void>;
  onEvent: (ev: WatchEvent) => void | Promise<void>;
  log?: Logger;
  /** Wait after a failed listing before the next try. */
  retryMs?: number;
}

/** Keys one request of a listing reads at most (DESIGN.md rule 5). */
export const LIST_PAGE = 500;

/**
 * Reads every key and value under a prefix in requests of at most
 * `pageSize` keys, all at the header revision of the first (so the pages
 * are one snapshot, and a watch from that revision + 1 misses nothing),
 * handing each page to `onPage` (awaited before the next is read).
 * Returns that revision. Throws when a
 * request fails, e.g. the revision was compacted between two pages.
 */
export async function listPages(
  store: Store,
  prefix: string,
  onPage: (items: RawKv[]) => void | Promise<void>,
  pageSize = LIST_PAGE,
): Promise<string> {
  const k = store.full(prefix);
  const end = prefixEnd(k);
  let from = k;
  let revision: string | undefined;
  for (;;) {
    const res = await store.client.kv.range({
      key: from,
      range_end: end,
      limit: pageSize,
      revision,
    });
    revision ??= String(res.header.revision);
    await onPage(res.kvs.map((kv) => raw(store, kv)));
    const last = res.kvs.at(-1);
    if (!res.more || !last) return revision;
    from = Buffer.concat([last.key, Buffer.from([0])]);
  }
}

/** Reads every key and value under a prefix (in pages) at one revision. */
export async function listRaw(
  store: Store,
  prefix: string,
  pageSize = LIST_PAGE,
): Promise<{ items: RawKv[]; revision: string }> {
  const items: RawKv[] = [];
  const revision = await listPages(
    store,
    prefix,
    (page) => {
      items.push(...page);
    },
    pageSize,
  );
  return { items, revision };
}

/**
 * A listed or watched value parsed with `schema` (unknown fields kept,
 * core/documents.ts), or null when it cannot be read: reported (log line,
 * metric), never thrown, so a watch loop survives any document.
 */
export function decodeRaw<T>(kv: RawKv, schema: z.ZodType<T>): T | null {
  const d = decodeDocument(kv.value, schema);
  if (d.ok) return d.value;
  reportUnreadable(kv.key, d.reason, kv.modRevision);
  return null;
}

/**
 * Like {@linkcode decodeRaw}, with the key and revisions of a `Kv`; a
 * document that cannot be read is reported and returned as `Unreadable`.
 */
export function decodeRawKv<T>(
  kv: RawKv,
  schema: z.ZodType<T>,
): Kv<T> | Unreadable {
  const d = decodeDocument(kv.value, schema);
  if (!d.ok) {
    reportUnreadable(kv.key, d.reason, kv.modRevision);
    return { key: kv.key, reason: d.reason };
  }
  return {
    key: kv.key,
    value: d.value,
    modRevision: kv.modRevision,
    createRevision: kv.createRevision ?? "0",
    lease: kv.lease ?? "0",
    schemaVersion: d.schemaVersion,
  };
}

/** A key and value as etcd returned it, keyspace-relative. */
export function raw(store: Store, kv: IKeyValue): RawKv {
  return {
    key: store.rel(kv.key),
    value: kv.value.toString(),
    modRevision: String(kv.mod_revision),
    createRevision: String(kv.create_revision),
    lease: String(kv.lease),
  };
}

/** Resolves when `signal` aborts; rejects only on a caller's handler error. */
export async function watchPrefix(
  store: Store,
  prefix: string,
  opts: WatchOptions,
): Promise<void> {
  const { signal } = opts;
  while (!signal.aborted) {
    let listing;
    try {
      listing = await listRaw(store, prefix);
    } catch (err) {
      opts.log?.warn("watch listing failed, retrying", {
        prefix,
        error: String(err),
      });
      await sleep(opts.retryMs ?? 250, signal);
      continue;
    }
    await opts.onReset(listing.items, listing.revision);
    await watchOnce(store, prefix, listing.revision, opts);
  }
}

/**
 * Watches from revision + 1 until an error or abort; events in order. The
 * caller lists again after it returns (unless `signal` aborted).
 */
export async function watchOnce(
  store: Store,
  prefix: string,
  revision: string,
  opts: Omit<WatchOptions, "onReset">,
): Promise<void> {
  const { signal } = opts;
  const full = store.full(prefix);
  let watcher;
  try {
    watcher = await store.client.watch().inRange({
      start: full,
      end: prefixEnd(full),
    }).startRevision(String(BigInt(revision) + 1n)).create();
  } catch (err) {
    opts.log?.warn("watch create failed", { prefix, error: String(err) });
    await sleep(opts.retryMs ?? 250, signal);
    return;
  }
  // Events are handled one at a time, in revision order.
  let chain = Promise.resolve();
  let failure: unknown;
  const push = (type: "put" | "delete", kv: IKeyValue) => {
    chain = chain.then(() => opts.onEvent({ type, ...raw(store, kv) })).catch(
      (err) => {
        failure = err;
      },
    );
  };
  await new Promise<void>((resolve) => {
    const end = () => resolve();
    watcher.on("put", (kv) => push("put", kv));
    watcher.on("delete", (kv) => push("delete", kv));
    watcher.on("error", (err) => {
      opts.log?.warn("watch error, listing again", {
        prefix,
        error: String(err),
      });
      end();
    });
    watcher.on("end", end);
    signal.addEventListener("abort", end, { once: true });
    // Aborted while listing or creating the watch: no abort event comes.
    if (signal.aborted) end();
  });
  // A watcher that etcd already canceled never answers cancel(): do not wait.
  await Promise.race([watcher.cancel().catch(() => {}), sleep(1000)]);
  await chain;
  if (failure) throw failure;
}

/** Sleeps, resolving early when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
