/**
 * Shared leases for keys that must expire after a fixed time (idempotency
 * keys, failover records): instead of one lease per key, a process binds
 * the keys of about a minute to one lease, granted for the time plus that
 * minute, so every key lives at least `ttlSeconds` and at most a minute
 * longer. A lease takes at most `maxKeys` keys (DESIGN.md rule 5: its
 * expiry deletes them in one request). Ages use the monotonic clock. A
 * lease etcd no longer knows (revoked, or a restored etcd) is dropped as
 * soon as a transaction is refused for it (`Store.onLeaseNotFound`): that
 * one write fails (503, or the task's next attempt), the next `take()`
 * grants a new lease.
 *
 * @example
 * ```ts
 * const lease = await leasePool(store, 86_400).take();
 * txn.put(keys.idempotency(owner, key), record, { lease });
 * ```
 */
import type { Store } from "./store.ts";

export interface LeasePoolOptions {
  /** How long one lease takes new keys. */
  rotateSeconds?: number;
  /** How many keys one lease takes at most. */
  maxKeys?: number;
  /** Monotonic milliseconds (the test seam). */
  now?: () => number;
}

/** Hands out leases that outlive `ttlSeconds` (see the module comment). */
export class LeasePool {
  readonly #rotateMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  #current?: {
    id: Promise<string>;
    at: number;
    keys: number;
    granted?: string;
  };

  constructor(
    readonly store: Store,
    readonly ttlSeconds: number,
    {
      rotateSeconds = 60,
      maxKeys = 1000,
      now = () => performance.now(),
    }: LeasePoolOptions = {},
  ) {
    this.#rotateMs = rotateSeconds * 1000;
    this.#maxKeys = maxKeys;
    this.#now = now;
    store.onLeaseNotFound((lease) => {
      if (this.#current?.granted === lease) this.#current = undefined;
    });
  }

  /**
   * A lease for one more key that ends no sooner than `ttlSeconds` from
   * now. A failed grant is not kept: the next call grants again.
   */
  async take(): Promise<string> {
    const now = this.#now();
    let c = this.#current;
    if (!c || now - c.at >= this.#rotateMs || c.keys >= this.#maxKeys) {
      // Granted after `now`: it ends after now + ttl + rotate.
      const ttl = this.ttlSeconds + Math.ceil(this.#rotateMs / 1000);
      c = { id: this.store.grantLease(ttl), at: now, keys: 0 };
      this.#current = c;
    }
    c.keys++;
    try {
      return c.granted = await c.id;
    } catch (err) {
      if (this.#current === c) this.#current = undefined;
      throw err;
    }
  }
}

const pools = new WeakMap<Store, Map<number, LeasePool>>();

/** This process's pool of `store` for keys that live `ttlSeconds`. */
export function leasePool(store: Store, ttlSeconds: number): LeasePool {
  let byTtl = pools.get(store);
  if (!byTtl) pools.set(store, byTtl = new Map());
  let pool = byTtl.get(ttlSeconds);
  if (!pool) byTtl.set(ttlSeconds, pool = new LeasePool(store, ttlSeconds));
  return pool;
}
