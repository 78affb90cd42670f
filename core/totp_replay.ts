/**
 * Replay protection of TOTP logins: each accepted token (a name, realm and
 * step, or a tag of an ungleich-otp token) is recorded until it can no longer
 * be valid, so it is accepted at most once. ungleich-otp keeps no such
 * record; ucloud is stricter here.
 *
 * @example
 * ```ts
 * const replay = new EtcdReplayStore(store);
 * await replay.claim(keys.otpUsed("ucloud", "alice", "56666666"), expiresAt); // true
 * await replay.claim(keys.otpUsed("ucloud", "alice", "56666666"), expiresAt); // false: replayed
 * ```
 */
import { UnavailableError } from "./errors.ts";
import type { Store } from "./store.ts";
import { TOTP_STEP_SECONDS } from "./totp_token.ts";

/** Records used tokens so that each is accepted at most once. */
export interface ReplayStore {
  /**
   * Marks `id` used until `expiresAt` (ms since epoch). Returns false when
   * it was already marked: the token is a replay.
   */
  claim(id: string, expiresAt: number): Promise<boolean>;
}

/** A replay store for one process (tests, single-node development). */
export class MemoryReplayStore implements ReplayStore {
  readonly #used = new Map<string, number>();
  readonly #now: () => number;
  #nextPrune = 0;

  constructor({ now = Date.now }: { now?: () => number } = {}) {
    this.#now = now;
  }

  claim(id: string, expiresAt: number): Promise<boolean> {
    const now = this.#now();
    if (now >= this.#nextPrune) {
      for (const [k, exp] of this.#used) if (exp <= now) this.#used.delete(k);
      this.#nextPrune = now + TOTP_STEP_SECONDS * 1000;
    }
    const exp = this.#used.get(id);
    if (exp !== undefined && exp > now) return Promise.resolve(false);
    this.#used.set(id, expiresAt);
    return Promise.resolve(true);
  }
}

/**
 * The replay store of a cluster: one etcd key per used token, created in an
 * `ifAbsent` transaction (so two API replicas cannot both accept it) and
 * bound to a lease that outlives the token's validity. Records whose expiry
 * falls in the same `rotateSeconds` bucket share one lease, so there are few
 * leases and each holds a bounded number of keys (DESIGN.md rule 5).
 */
export class EtcdReplayStore implements ReplayStore {
  readonly #rotateMs: number;
  readonly #now: () => number;
  /** Lease ids by expiry bucket; a bucket's lease ends after the bucket. */
  readonly #leases = new Map<number, Promise<string>>();

  constructor(
    readonly store: Store,
    { rotateSeconds = 10, now = Date.now }: {
      rotateSeconds?: number;
      now?: () => number;
    } = {},
  ) {
    this.#rotateMs = rotateSeconds * 1000;
    this.#now = now;
  }

  async claim(id: string, expiresAt: number): Promise<boolean> {
    const bucket = Math.floor(expiresAt / this.#rotateMs);
    const lease = await this.#leaseFor(bucket);
    try {
      const r = await this.store.txn().ifAbsent(id)
        .put(id, { usedAt: new Date(this.#now()).toISOString() }, { lease })
        .commit();
      return r.ok;
    } catch (err) {
      // The lease may be gone (e.g. revoked): grant a new one next time.
      this.#forget(bucket, lease);
      throw err;
    }
  }

  #leaseFor(bucket: number): Promise<string> {
    const have = this.#leases.get(bucket);
    if (have) return have;
    const now = this.#now();
    for (const b of this.#leases.keys()) {
      if ((b + 1) * this.#rotateMs <= now) this.#leases.delete(b);
    }
    // Granted after `now`, so it ends after the bucket, after every expiry in it.
    const ttl = Math.max(
      1,
      Math.ceil(((bucket + 1) * this.#rotateMs - now) / 1000),
    );
    const p = this.store.client.leaseClient.leaseGrant({ TTL: ttl }, {
      deadline: Date.now() + this.store.timeoutMs,
    }).then((res) => String(res.ID), (err) => {
      if (this.#leases.get(bucket) === p) this.#leases.delete(bucket);
      throw new UnavailableError(
        `Cannot grant replay lease: etcd: ${(err as Error).message}`,
        { cause: err },
      );
    });
    this.#leases.set(bucket, p);
    return p;
  }

  #forget(bucket: number, lease: string): void {
    this.#leases.get(bucket)?.then((l) => {
      if (l === lease) this.#leases.delete(bucket);
    }, () => {});
  }
}
