/**
 * Transactions of the store (core/store.ts `Store.txn()`): conditions on
 * mod revisions, absence, creation since a revision and leases, ANDed, and
 * the puts and deletes that run when all hold (DESIGN.md rule 1). A lost
 * compare is a returned `{ ok: false }`; etcd refusing a lease that is gone
 * tells the store's `onLeaseNotFound` subscribers. core/store.ts
 * re-exports `Txn`, `TxnResult` and `prefixEnd`.
 *
 * @example
 * ```ts
 * const r = await store.txn().ifModRevision(keys.vm(id), rev)
 *   .put(keys.vm(id), vm).commit();
 * if (!r.ok) { ... read again ... }
 * ```
 */
import { Buffer } from "node:buffer";
import type { ICompare, IRequestOp } from "etcd3";
import { stamp } from "./documents.ts";
import { UnavailableError } from "./errors.ts";
import type { Store } from "./store.ts";

/** Returns the end of the key range that holds every key starting with `p`. */
export function prefixEnd(p: Buffer): Buffer {
  const end = Buffer.from(p);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export interface TxnResult {
  ok: boolean;
  revision: string;
}

/**
 * A transaction builder. Conditions are ANDed; `put`/`delete` run when all
 * hold. Nothing is sent until `commit()`.
 */
export class Txn {
  readonly #compare: ICompare[] = [];
  readonly #ops: IRequestOp[] = [];

  constructor(readonly store: Store) {}

  /** Holds when the key's mod revision equals `rev` ("0": key absent). */
  ifModRevision(key: string, rev: string): this {
    this.#compare.push({
      key: this.store.full(key),
      target: "Mod",
      result: "Equal",
      mod_revision: rev,
    });
    return this;
  }

  /** Holds when the key does not exist. */
  ifAbsent(key: string): this {
    this.#compare.push({
      key: this.store.full(key),
      target: "Create",
      result: "Equal",
      create_revision: 0,
    });
    return this;
  }

  /**
   * Holds when no key under `prefix` was created after `revision` (e.g. the
   * header revision of a listing): "nothing new appeared since I looked".
   * Later writes of existing keys do not break it.
   */
  ifNoneCreatedSince(prefix: string, revision: string): this {
    const k = this.store.full(prefix);
    this.#compare.push({
      key: k,
      range_end: prefixEnd(k),
      target: "Create",
      result: "Less",
      create_revision: String(BigInt(revision) + 1n),
    });
    return this;
  }

  /** Holds when the key exists and is bound to `lease`. */
  ifLease(key: string, lease: string): this {
    this.#compare.push({
      key: this.store.full(key),
      target: "Lease",
      result: "Equal",
      lease,
    });
    return this;
  }

  /**
   * Holds when the key is absent or bound to another lease than `lease`
   * (etcd compares a missing key's lease as 0): "that incarnation is dead".
   */
  ifNotLease(key: string, lease: string): this {
    this.#compare.push({
      key: this.store.full(key),
      target: "Lease",
      result: "NotEqual",
      lease,
    });
    return this;
  }

  /**
   * Writes a JSON document, optionally bound to a lease; an object gets
   * this code's `schemaVersion` (core/documents.ts).
   */
  put(key: string, value: unknown, opts: { lease?: string } = {}): this {
    this.#ops.push({
      request_put: {
        key: this.store.full(key),
        value: Buffer.from(JSON.stringify(stamp(value))),
        lease: opts.lease,
      },
    });
    return this;
  }

  delete(key: string): this {
    this.#ops.push({ request_delete_range: { key: this.store.full(key) } });
    return this;
  }

  /** True when nothing has been added yet. */
  get empty(): boolean {
    return this.#ops.length === 0 && this.#compare.length === 0;
  }

  /** Appends another transaction's conditions and operations. */
  merge(other: Txn): this {
    this.#compare.push(...other.#compare);
    this.#ops.push(...other.#ops);
    return this;
  }

  async commit(): Promise<TxnResult> {
    try {
      const res = await this.store.client.kv.txn({
        compare: this.#compare,
        success: this.#ops,
        failure: [],
      });
      return { ok: res.succeeded, revision: String(res.header.revision) };
    } catch (err) {
      if (/lease not found/i.test(errMessage(err))) {
        this.store.leaseNotFound(
          this.#ops.flatMap((o) =>
            o.request_put?.lease ? [String(o.request_put.lease)] : []
          ),
        );
      }
      throw new UnavailableError(
        `Cannot commit transaction: etcd: ${errMessage(err)}`,
        { cause: err },
      );
    }
  }
}

/** The message of a thrown value. */
export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
