/**
 * Revocation lists of bearer and session tokens (api/tokens.ts): a token id
 * revoked here is refused until the token would have expired anyway. One in
 * memory for tests and single-node development, one in etcd for the API.
 *
 * @example
 * ```ts
 * const revocations = new EtcdRevocationList(store);
 * await revocations.revoke(claims.jti, claims.exp * 1000);
 * ```
 */
import { z } from "@hono/zod-openapi";
import { UnavailableError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import type { Store } from "../core/store.ts";

/** Bearer tokens withdrawn before they expire. */
export interface RevocationList {
  revoke(jti: string, expiresAt: number): Promise<void>;
  isRevoked(jti: string): Promise<boolean>;
}

/** Revocations in one process's memory (tests, single-node development). */
export class MemoryRevocationList implements RevocationList {
  readonly #revoked = new Map<string, number>();

  constructor(readonly now: () => number = Date.now) {}

  revoke(jti: string, expiresAt: number): Promise<void> {
    const now = this.now();
    for (const [k, exp] of this.#revoked) {
      if (exp <= now) this.#revoked.delete(k);
    }
    this.#revoked.set(jti, expiresAt);
    return Promise.resolve();
  }

  isRevoked(jti: string): Promise<boolean> {
    return Promise.resolve(this.#revoked.has(jti));
  }
}

/** The etcd key of a revoked bearer token, relative to the store prefix. */
export const revokedKey = keys.authRevoked;

/**
 * Revocations in etcd, one key per revoked token bound to a lease that ends
 * when the token would have expired anyway.
 */
export class EtcdRevocationList implements RevocationList {
  constructor(
    readonly store: Store,
    readonly now: () => number = Date.now,
  ) {}

  async revoke(jti: string, expiresAt: number): Promise<void> {
    const ttl = Math.ceil((expiresAt - this.now()) / 1000);
    if (ttl <= 0) return;
    let lease: string;
    try {
      const res = await this.store.client.leaseClient.leaseGrant({
        TTL: ttl,
      }, { deadline: Date.now() + this.store.timeoutMs });
      lease = String(res.ID);
    } catch (err) {
      throw new UnavailableError(
        `Cannot revoke bearer token: etcd: ${(err as Error).message}`,
        { cause: err },
      );
    }
    await this.store.txn().put(revokedKey(jti), {
      revokedAt: new Date(this.now()).toISOString(),
    }, { lease }).commit();
  }

  async isRevoked(jti: string): Promise<boolean> {
    return (await this.store.get(revokedKey(jti), z.unknown())) !== null;
  }
}
