/**
 * Helpers of the paged-listing tests (tests/api_pages_test.ts): documents
 * written in batches, ids that sort as wanted, `allPages()` following
 * continue tokens through the app, and `countReads()` on the real store.
 */
import assert from "node:assert/strict";
import type { Store } from "../../core/store.ts";
import { type App, call } from "./api.ts";

/** Writes documents in transactions of 100 puts. */
export async function putAll(store: Store, docs: [string, unknown][]) {
  for (let i = 0; i < docs.length; i += 100) {
    const txn = store.txn();
    for (const [k, v] of docs.slice(i, i + 100)) txn.put(k, v);
    assert.ok((await txn.commit()).ok);
  }
}

/** A VM id that sorts by `n`. */
export const vmId = (n: number) => `vm-${String(n).padStart(6, "0")}`;

/** A task id created at `ms`, with a random part that sorts by `n`. */
export const taskId = (ms: number, n: number) =>
  `t-${ms.toString(36).padStart(9, "0")}-${n.toString(16).padStart(8, "0")}`;

/** Follows `continue` from the first page to the last; every page's items. */
export async function allPages<T>(
  app: App,
  path: string,
  headers: Record<string, string>,
  between: (page: number) => Promise<void> = () => Promise.resolve(),
): Promise<{ pages: T[][]; tokens: string[] }> {
  const pages: T[][] = [];
  const tokens: string[] = [];
  let token: string | null = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const url: string = token === null
      ? path
      : `${path}${sep}continue=${encodeURIComponent(token)}`;
    const r = await call(app, "GET", url, { headers });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    pages.push(r.body.items);
    token = r.body.continue;
    assert.ok(token === null || typeof token === "string");
    if (token !== null) tokens.push(token);
    await between(pages.length);
    assert.ok(pages.length < 10_000, "pages never end");
  } while (token !== null);
  return { pages, tokens };
}

/**
 * Counts the keys etcd returns to `store` and the requests that read them,
 * by wrapping its client's range and txn (a txn of range reads counts as
 * one request).
 */
export function countReads(store: Store) {
  const kv = store.client.kv;
  const range = kv.range.bind(kv);
  const txn = kv.txn.bind(kv);
  const seen = { requests: 0, keys: 0 };
  kv.range = async (...args: Parameters<typeof range>) => {
    const res = await range(...args);
    seen.requests++;
    seen.keys += res.kvs.length;
    return res;
  };
  kv.txn = async (...args: Parameters<typeof txn>) => {
    const res = await txn(...args);
    const ranges = res.responses.filter((r) => r.response_range);
    if (ranges.length) seen.requests++;
    for (const r of ranges) seen.keys += r.response_range.kvs.length;
    return res;
  };
  return seen;
}
