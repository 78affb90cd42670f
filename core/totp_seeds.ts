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

/**
 * The etcd document of a seed: the seed encrypted, bound to its key, and
 * its audit record: when, by whom and from where the name first enrolled
 * (kept over rotations) and was last rotated. `by` is the user itself
 * (with the LDAP password) or the admin who made it; `from` the client's
 * address, when known. Absent fields: seeds made before the record existed.
 */
export const SeedDoc = z.object({
  seed: z.string(),
  createdAt: z.string(),
  enrolledAt: z.string().optional(),
  enrolledBy: z.string().optional(),
  enrolledFrom: z.string().optional(),
  rotatedAt: z.string().optional(),
  rotatedBy: z.string().optional(),
  rotatedFrom: z.string().optional(),
  /** Rotations since the first enrollment. */
  rotations: z.number().int().min(0).optional(),
});
export type SeedDoc = z.infer<typeof SeedDoc>;

/** A seed's audit record: its document without the seed. */
export type SeedRecord = Omit<SeedDoc, "seed">;

/** Who makes a seed and from where (the audit record). */
export interface SeedAuthor {
  /** The user itself or the admin who asks. */
  by?: string;
  /** The client's address. */
  from?: string;
}

/**
 * Seeds in etcd under `otp-seed/<realm>/<name>`, encrypted with the host's
 * seal key (AES-GCM, the key path as associated data: a seed copied to
 * another name does not decrypt).
 */
export class EtcdSeedStore implements SeedSource {
  constructor(readonly store: Store, readonly sealKey: CryptoKey) {}

  /**
   * Creates a seed for `(realm, name)` and returns it: the only time it is
   * shown. Throws `ConflictError` when one exists, unless `replace`, and
   * when another rotation won meanwhile. The audit record names `author`.
   */
  async create(
    realm: string,
    name: string,
    { replace = false, by, from }: { replace?: boolean } & SeedAuthor = {},
  ): Promise<string> {
    const key = keys.otpSeed(realm, name);
    const cur = replace ? await this.store.get(key, SeedDoc) : null;
    const seed = newSeed();
    const at = new Date().toISOString();
    const opt = (k: string, v: string | undefined) => v ? { [k]: v } : {};
    const prev = cur?.value;
    const doc: SeedDoc = {
      seed: await encryptSecret(this.sealKey, seed, key),
      createdAt: at,
      ...(prev
        ? {
          ...opt("enrolledAt", prev.enrolledAt ?? prev.createdAt),
          ...opt("enrolledBy", prev.enrolledBy),
          ...opt("enrolledFrom", prev.enrolledFrom),
          rotatedAt: at,
          ...opt("rotatedBy", by),
          ...opt("rotatedFrom", from),
          rotations: (prev.rotations ?? 0) + 1,
        }
        : {
          enrolledAt: at,
          ...opt("enrolledBy", by),
          ...opt("enrolledFrom", from),
        }),
    };
    const txn = cur
      ? this.store.txn().ifModRevision(key, cur.modRevision)
      : this.store.txn().ifAbsent(key);
    const r = await txn.put(key, doc).commit();
    if (!r.ok) {
      throw new ConflictError(
        replace
          ? `Cannot rotate seed: the seed of ${name} in realm ${realm} changed meanwhile; try again`
          : `Cannot create seed: ${name} in realm ${realm} already has one`,
      );
    }
    return seed;
  }

  /** The audit record of `(realm, name)`'s seed (never the seed), or null. */
  async record(realm: string, name: string): Promise<SeedRecord | null> {
    const kv = await this.store.get(keys.otpSeed(realm, name), SeedDoc);
    if (!kv) return null;
    const { seed: _, ...record } = kv.value;
    return record;
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
