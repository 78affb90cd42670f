/**
 * Continue tokens of paged listings: a position in a prefix (a key),
 * sealed with AES-256-GCM under a key kept in etcd (`page-key`, made once
 * by the first API process that needs it and shared by all replicas), with
 * the prefix as additional data. A token names no key in clear: a listing
 * that stopped on another user's VM does not show that VM's id. A token
 * that was not sealed here for this prefix (garbage, edited, from another
 * listing) is an InvalidError of the field `continue`.
 *
 * @example
 * ```ts
 * const token = await sealPosition(store, "vm/", "vm/vm-2\0");
 * await openPosition(store, "vm/", token); // "vm/vm-2\0"
 * ```
 */
import { Buffer } from "node:buffer";
import { z } from "zod";
import { InvalidError } from "./errors.ts";
import { keys } from "./keys.ts";
import type { Store } from "./store.ts";

const IV_BYTES = 12;
/** Tokens longer than this are refused unread. */
const MAX_TOKEN_CHARS = 2048;
const PageKey = z.object({ key: z.string() });

const cache = new WeakMap<Store, Promise<CryptoKey>>();

/**
 * The sealing key of this store's listings. `make`: write it when absent;
 * otherwise an absent key is null (no token can have been sealed yet, and a
 * refused request writes nothing).
 */
async function pageKey(
  store: Store,
  make: boolean,
): Promise<CryptoKey | null> {
  const cached = cache.get(store);
  if (cached) return cached;
  let kv = await store.get(keys.pageKey, PageKey);
  if (!kv && !make) return null;
  if (!kv) {
    const raw = crypto.getRandomValues(new Uint8Array(32));
    const key = Buffer.from(raw).toString("base64");
    // A lost compare: another process made it first; read theirs.
    await store.txn().ifAbsent(keys.pageKey).put(keys.pageKey, { key })
      .commit();
    kv = await store.get(keys.pageKey, PageKey);
    if (!kv) throw new Error(`Cannot read ${keys.pageKey} after writing it`);
  }
  const imported = crypto.subtle.importKey(
    "raw",
    Buffer.from(kv.value.key, "base64"),
    "AES-GCM",
    false,
    ["encrypt", "decrypt"],
  );
  imported.catch(() => cache.delete(store));
  cache.set(store, imported);
  return imported;
}

/** Seals `position` (a key under `prefix`) into an opaque token. */
export async function sealPosition(
  store: Store,
  prefix: string,
  position: string,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(prefix) },
    (await pageKey(store, true))!,
    new TextEncoder().encode(position),
  );
  return Buffer.concat([iv, new Uint8Array(sealed)]).toString("base64url");
}

/**
 * The position sealed in `token` for `prefix`; InvalidError (`continue`)
 * when the token was not made by `sealPosition` for this prefix.
 */
export async function openPosition(
  store: Store,
  prefix: string,
  token: string,
): Promise<string> {
  const bad = () =>
    new InvalidError(
      "continue",
      "continue must be the token of an earlier page of this listing",
    );
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) {
    throw bad();
  }
  const bytes = Buffer.from(token, "base64url");
  const key = bytes.length > IV_BYTES && await pageKey(store, false);
  if (!key) throw bad();
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: bytes.subarray(0, IV_BYTES),
        additionalData: new TextEncoder().encode(prefix),
      },
      key,
      bytes.subarray(IV_BYTES),
    );
  } catch {
    throw bad();
  }
  const position = new TextDecoder().decode(plain);
  if (!position.startsWith(prefix)) throw bad();
  return position;
}
