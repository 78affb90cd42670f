/**
 * Where TOTP seeds are kept: in memory (tests, single-node development) or
 * in etcd, encrypted with the host's seal key. A seed is shown once, when it
 * is created.
 *
 * @example
 * ```ts
 * const seeds = new EtcdSeedStore(store, hostKeys.seal);
 * const seed = await seeds.create("ucloud", "alice"); // shown once
 * await seeds.get("ucloud", "alice"); // the same seed
 * ```
 */
import { z } from "zod";
import { ConflictError } from "./errors.ts";
import { keys } from "./keys.ts";
import { decryptSecret, encryptSecret, newSeed } from "./secrets.ts";
import type { Store } from "./store.ts";

/** Where seeds are looked up. */
export interface SeedSource {
  /** The base32 seed of `(realm, name)`, or null when there is none. */
  get(realm: string, name: string): Promise<string | null>;
}

/** Seeds in one process's memory (tests, single-node development). */
export class MemorySeedStore implements SeedSource {
  readonly #seeds = new Map<string, string>();

  set(realm: string, name: string, seed: string): void {
    this.#seeds.set(keys.otpSeed(realm, name), seed);
  }

  get(realm: string, name: string): Promise<string | null> {
    return Promise.resolve(this.#seeds.get(keys.otpSeed(realm, name)) ?? null);
  }
}

/** The etcd document of a seed: the seed encrypted, bound to its key. */
export const SeedDoc = z.object({
  seed: z.string(),
  createdAt: z.string(),
});
export type SeedDoc = z.infer<typeof SeedDoc>;

/**
 * Seeds in etcd under `otp-seed/<realm>/<name>`, encrypted with the host's
 * seal key (AES-GCM, the key path as associated data: a seed copied to
 * another name does not decrypt).
 */
export class EtcdSeedStore implements SeedSource {
  constructor(readonly store: Store, readonly sealKey: CryptoKey) {}

  /**
   * Creates a seed for `(realm, name)` and returns it: the only time it is
   * shown. Throws `ConflictError` when one exists, unless `replace`.
   */
  async create(
    realm: string,
    name: string,
    { replace = false }: { replace?: boolean } = {},
  ): Promise<string> {
    const key = keys.otpSeed(realm, name);
    const seed = newSeed();
    const doc: SeedDoc = {
      seed: await encryptSecret(this.sealKey, seed, key),
      createdAt: new Date().toISOString(),
    };
    const txn = this.store.txn();
    if (!replace) txn.ifAbsent(key);
    const r = await txn.put(key, doc).commit();
    if (!r.ok) {
      throw new ConflictError(
        `Cannot create seed: ${name} in realm ${realm} already has one`,
      );
    }
    return seed;
  }

  async get(realm: string, name: string): Promise<string | null> {
    const key = keys.otpSeed(realm, name);
    const kv = await this.store.get(key, SeedDoc);
    return kv ? await decryptSecret(this.sealKey, kv.value.seed, key) : null;
  }

  /** Deletes the seed; returns false when there was none. */
  async delete(realm: string, name: string): Promise<boolean> {
    const key = keys.otpSeed(realm, name);
    const kv = await this.store.get(key, SeedDoc);
    if (!kv) return false;
    await this.store.txn().delete(key).commit();
    return true;
  }
}
