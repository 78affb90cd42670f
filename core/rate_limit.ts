/**
 * Sliding-window failure limits: a key (a caller's name, a source address)
 * is blocked once it has `limit` failures within the last `windowMs`, until
 * the oldest of them leaves the window. Pure and in memory, with an
 * injectable clock; each API replica limits on its own.
 *
 * @example
 * ```ts
 * const limiter = new AuthLimiter({ perName: { limit: 5, windowMs: 60_000 } });
 * const wait = limiter.retryAfterMs({ name: "alice@ucloud", address: "2001:db8::1" });
 * if (wait > 0) return tooManyRequests(wait);
 * if (!ok) limiter.fail({ name: "alice@ucloud", address: "2001:db8::1" });
 * ```
 */

export interface WindowLimit {
  /** Failures allowed within the window; the next attempt is refused. */
  limit: number;
  windowMs: number;
}

export interface SlidingWindowOptions extends WindowLimit {
  /** Keys kept at most; the least recently failed are dropped beyond it. */
  maxKeys?: number;
  /** Clock, the test seam. */
  now?: () => number;
}

/** Failure timestamps per key within a sliding window. */
export class SlidingWindow {
  readonly #hits = new Map<string, number[]>();
  readonly limit: number;
  readonly windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;

  constructor(
    { limit, windowMs, maxKeys = 100_000, now = Date.now }:
      SlidingWindowOptions,
  ) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError("limit must be a positive integer");
    }
    if (!(windowMs > 0)) throw new RangeError("windowMs must be positive");
    this.limit = limit;
    this.windowMs = windowMs;
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  #recent(key: string, now: number): number[] {
    const hits = this.#hits.get(key);
    if (!hits) return [];
    while (hits.length && hits[0] <= now - this.windowMs) hits.shift();
    if (!hits.length) this.#hits.delete(key);
    return hits;
  }

  /** Milliseconds until `key` may try again; 0 when it may now. */
  retryAfterMs(key: string): number {
    const now = this.#now();
    const hits = this.#recent(key, now);
    if (hits.length < this.limit) return 0;
    return hits[hits.length - this.limit] + this.windowMs - now;
  }

  /** Records one failure of `key`. */
  fail(key: string): void {
    const now = this.#now();
    const hits = this.#recent(key, now);
    hits.push(now);
    // Only the newest `limit` failures matter for the decision.
    if (hits.length > this.limit) hits.shift();
    this.#hits.delete(key);
    this.#hits.set(key, hits);
    if (this.#hits.size > this.#maxKeys) {
      this.#hits.delete(this.#hits.keys().next().value!);
    }
  }

  /** Forgets the failures of `key` (after a success). */
  clear(key: string): void {
    this.#hits.delete(key);
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#hits.size;
  }
}

/** Who is attempting: the claimed name (with realm) and the source address. */
export interface Attempt {
  /** Absent when the caller did not say who it is (e.g. a bad bearer token). */
  name?: string;
  /** Absent when unknown: one shared key would let one caller block all. */
  address?: string;
}

export interface AuthLimiterOptions {
  perName?: WindowLimit;
  perAddress?: WindowLimit;
  now?: () => number;
}

/** Failure limits of authentication: one per claimed name, one per address. */
export class AuthLimiter {
  readonly byName: SlidingWindow;
  readonly byAddress: SlidingWindow;

  constructor({
    perName = { limit: 5, windowMs: 5 * 60_000 },
    perAddress = { limit: 50, windowMs: 5 * 60_000 },
    now = Date.now,
  }: AuthLimiterOptions = {}) {
    this.byName = new SlidingWindow({ ...perName, now });
    this.byAddress = new SlidingWindow({ ...perAddress, now });
  }

  /** Milliseconds until this attempt may be made; 0 when it may now. */
  retryAfterMs({ name, address }: Attempt): number {
    return Math.max(
      name === undefined ? 0 : this.byName.retryAfterMs(name),
      address === undefined ? 0 : this.byAddress.retryAfterMs(address),
    );
  }

  /** Records a failed attempt against its name and its address. */
  fail({ name, address }: Attempt): void {
    if (name !== undefined) this.byName.fail(name);
    if (address !== undefined) this.byAddress.fail(address);
  }

  /** Forgets the name's failures after it authenticated. */
  succeed({ name }: Attempt): void {
    if (name !== undefined) this.byName.clear(name);
  }
}
