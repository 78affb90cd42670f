/**
 * Failure limits of authentication, pure and in memory with an injectable
 * clock (each API replica limits on its own):
 *
 * - per claimed name, a back-off, never a lock-out: `limit` failures are
 *   free, each further one makes the name wait `backoffBaseMs` doubling per
 *   failure up to `backoffMaxMs`, and once that wait has passed the next
 *   attempt is checked again; the failures are forgotten after a success or
 *   `windowMs` without one;
 * - per source address (an IPv4 address, an IPv6 /64), failures counted in
 *   a sliding window. An address is never refused for them: many clients
 *   can share one (NAT, a proxy that is not trusted), so a valid credential
 *   from it goes through. An address over its limit only loses the free
 *   failures: each failure from it puts that name into back-off at once, so
 *   one address spraying guesses over many names gets one guess per name
 *   and back-off.
 *
 * @example
 * ```ts
 * const limiter = new AuthLimiter({ perName: { limit: 5, windowMs: 60_000 } });
 * const wait = limiter.retryAfterMs({ name: "alice@ucloud", address: "2001:db8::1" });
 * if (wait > 0) return tooManyRequests(wait);
 * if (!ok) limiter.fail({ name: "alice@ucloud", address: "2001:db8::1" });
 * ```
 */
import { addressBucket } from "./client_address.ts";

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

export interface BackOffOptions extends WindowLimit {
  /** The first wait, after `limit` failures; doubles with each further one. */
  backoffBaseMs?: number;
  /** The longest wait. */
  backoffMaxMs?: number;
  /** Keys kept at most; the least recently failed are dropped beyond it. */
  maxKeys?: number;
  now?: () => number;
}

interface BackOffState {
  failures: number;
  /** Refused until then. */
  until: number;
  last: number;
}

/**
 * Exponential back-off per key: `limit` failures free, then a wait of
 * `backoffBaseMs * 2^(failures - limit)` (at most `backoffMaxMs`) after each
 * failure. A key's failures are forgotten `windowMs` after its last failure
 * and its wait, whichever ends later.
 */
export class BackOff {
  readonly #state = new Map<string, BackOffState>();
  readonly limit: number;
  readonly windowMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;

  constructor({
    limit,
    windowMs,
    backoffBaseMs = 1000,
    backoffMaxMs = 15 * 60_000,
    maxKeys = 100_000,
    now = Date.now,
  }: BackOffOptions) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError("limit must be a positive integer");
    }
    if (!(windowMs > 0)) throw new RangeError("windowMs must be positive");
    if (!(backoffBaseMs > 0) || !(backoffMaxMs >= backoffBaseMs)) {
      throw new RangeError(
        "backoffBaseMs must be positive and backoffMaxMs at least as long",
      );
    }
    this.limit = limit;
    this.windowMs = windowMs;
    this.backoffBaseMs = backoffBaseMs;
    this.backoffMaxMs = backoffMaxMs;
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  #current(key: string, now: number): BackOffState | undefined {
    const s = this.#state.get(key);
    if (s && now >= Math.max(s.last + this.windowMs, s.until + this.windowMs)) {
      this.#state.delete(key);
      return undefined;
    }
    return s;
  }

  /** Milliseconds until `key` may try again; 0 when it may now. */
  retryAfterMs(key: string): number {
    const now = this.#now();
    const s = this.#current(key, now);
    return s ? Math.max(0, s.until - now) : 0;
  }

  /**
   * Records one failure of `key`. `strict`: no free failures left (the
   * wait starts with this one). Returns the wait it imposes (0: none yet).
   */
  fail(key: string, { strict = false }: { strict?: boolean } = {}): number {
    const now = this.#now();
    const s = this.#current(key, now) ?? { failures: 0, until: 0, last: now };
    s.failures += 1;
    s.last = now;
    const n = strict ? Math.max(s.failures, this.limit) : s.failures;
    let wait = 0;
    if (n >= this.limit) {
      // 2^40 already exceeds any sensible maximum; avoids Infinity.
      const doubled = this.backoffBaseMs * 2 ** Math.min(n - this.limit, 40);
      wait = Math.min(doubled, this.backoffMaxMs);
      s.until = now + wait;
    }
    this.#state.delete(key);
    this.#state.set(key, s);
    if (this.#state.size > this.#maxKeys) {
      this.#state.delete(this.#state.keys().next().value!);
    }
    return wait;
  }

  /** Forgets the failures of `key` (after a success). */
  clear(key: string): void {
    this.#state.delete(key);
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#state.size;
  }
}

/** Who is attempting: the claimed name (with realm) and the source address. */
export interface Attempt {
  /** Absent when the caller did not say who it is (e.g. a bad bearer token). */
  name?: string;
  /** Absent when unknown: no per-address count then. */
  address?: string;
}

export interface AuthLimiterOptions {
  perName?: WindowLimit & { backoffBaseMs?: number; backoffMaxMs?: number };
  perAddress?: WindowLimit;
  now?: () => number;
}

/** Failure limits of authentication: a back-off per name, a count per address. */
export class AuthLimiter {
  readonly byName: BackOff;
  readonly byAddress: SlidingWindow;

  constructor({
    perName = { limit: 5, windowMs: 60 * 60_000 },
    perAddress = { limit: 50, windowMs: 5 * 60_000 },
    now = Date.now,
  }: AuthLimiterOptions = {}) {
    this.byName = new BackOff({ ...perName, now });
    this.byAddress = new SlidingWindow({ ...perAddress, now });
  }

  /**
   * Milliseconds until this attempt may be made (the name's back-off); 0
   * when it may now. The address never refuses: see the module doc.
   */
  retryAfterMs({ name }: Attempt): number {
    return name === undefined ? 0 : this.byName.retryAfterMs(name);
  }

  /** Whether `address` has used up its failures (its bucket is over the limit). */
  noisy(address: string | undefined): boolean {
    return address !== undefined &&
      this.byAddress.retryAfterMs(addressBucket(address)) > 0;
  }

  /**
   * Records a failed attempt against its address's bucket and its name; a
   * name failing from a noisy address goes into back-off at once.
   */
  fail({ name, address }: Attempt): void {
    if (address !== undefined) this.byAddress.fail(addressBucket(address));
    if (name !== undefined) {
      this.byName.fail(name, { strict: this.noisy(address) });
    }
  }

  /** Forgets the name's failures after it authenticated. */
  succeed({ name }: Attempt): void {
    if (name !== undefined) this.byName.clear(name);
  }
}
