/**
 * A limit on attempts per name shared by every API replica: the times of a
 * name's last `limit` attempts live in one etcd key, `attempts/<scope>/<name>`,
 * written in a transaction that compares the revision it read (two replicas
 * cannot both take the last attempt), and bound to a shared lease that ends
 * at least `windowSeconds` after the write (core/lease_pool.ts), so a name's
 * record goes away by itself once its attempts are old and the keyspace does
 * not grow with the names ever tried.
 *
 * Every attempt counts, successful or not: the limit bounds what one name
 * can be tried for, whichever replica and address it comes from.
 *
 * @example
 * ```ts
 * const seeds = new AttemptLimit(store, { scope: "seed", limit: 5, windowSeconds: 3600 });
 * const wait = await seeds.take("alice@ucloud");
 * if (wait > 0) return tooManyAttempts(c, wait);
 * ```
 */
import { z } from "zod";
import { keys } from "./keys.ts";
import { leasePool } from "./lease_pool.ts";
import type { Store } from "./store.ts";

/** The value of `attempts/<scope>/<name>`: recent attempts, ms since epoch. */
export const Attempts = z.object({ at: z.array(z.number()) });
export type Attempts = z.infer<typeof Attempts>;

export interface AttemptLimitOptions {
  /** The key segment that keeps limits of different purposes apart. */
  scope: string;
  /** Attempts allowed per name within the window. */
  limit: number;
  windowSeconds: number;
  /** Wall clock in ms (shared by replicas), the test seam. */
  now?: () => number;
}

/** Lost compares in a row before an attempt is refused as contended. */
const TRIES = 5;

/** Attempts per name in a sliding window, kept in etcd (module comment). */
export class AttemptLimit {
  readonly scope: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly #now: () => number;

  constructor(
    readonly store: Store,
    { scope, limit, windowSeconds, now = Date.now }: AttemptLimitOptions,
  ) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError("limit must be a positive integer");
    }
    if (!(windowSeconds >= 1)) {
      throw new RangeError("windowSeconds must be at least 1");
    }
    this.scope = scope;
    this.limit = limit;
    this.windowMs = windowSeconds * 1000;
    this.#now = now;
  }

  /**
   * Takes one attempt of `name`: returns 0 when it is allowed (and now
   * counted), else the milliseconds until the oldest counted attempt leaves
   * the window. Throws UnavailableError when etcd cannot be reached: the
   * caller refuses then (the limit is never skipped).
   */
  async take(name: string): Promise<number> {
    const key = keys.attempts(this.scope, name);
    for (let i = 0; i < TRIES; i++) {
      const kv = await this.store.get(key, Attempts);
      const now = this.#now();
      const recent = (kv?.value.at ?? []).filter((t) =>
        t > now - this.windowMs && t <= now + this.windowMs
      );
      if (recent.length >= this.limit) {
        const oldest = recent[recent.length - this.limit];
        return Math.max(1, oldest + this.windowMs - now);
      }
      const at = [...recent, now].slice(-this.limit);
      // The pool is looked up at use: building the app touches no store.
      const lease = await leasePool(this.store, Math.ceil(this.windowMs / 1000))
        .take();
      const txn = kv
        ? this.store.txn().ifModRevision(key, kv.modRevision)
        : this.store.txn().ifAbsent(key);
      if ((await txn.put(key, { at }, { lease }).commit()).ok) return 0;
    }
    // Other replicas took attempts of this name meanwhile: refuse this one.
    return 1000;
  }
}
