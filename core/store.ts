/**
 * The etcd store layer: typed reads, prefix listings that return the header
 * revision, and transactions that compare mod revisions (DESIGN.md rule 1;
 * the builder is core/store_txn.ts, re-exported here).
 * A lost compare is a returned `{ ok: false }`, never an exception.
 * Documents are read and written across versions (core/documents.ts):
 * unknown fields are kept, every object written carries `schemaVersion`,
 * and a listing skips (and reports) a document it cannot read.
 *
 * @example
 * ```ts
 * const store = Store.connect(config.etcd);
 * const vm = await store.get(keys.vm(id), Vm);
 * const r = await store.txn().ifModRevision(keys.vm(id), vm!.modRevision)
 *   .put(keys.vm(id), { ...vm!.value, desired: "stopped" }).commit();
 * if (!r.ok) { ... read again ... }
 * ```
 */
import { Buffer } from "node:buffer";
import { Etcd3, type IKeyValue } from "etcd3";
import { ExponentialBackoff, type IBackoff, noop } from "cockatiel";
import type { z } from "zod";
import { decodeDocument } from "./documents.ts";
import { UnavailableError, UnreadableError } from "./errors.ts";
import { reportUnreadable } from "./unreadable.ts";
import { errMessage, prefixEnd, Txn } from "./store_txn.ts";

export { prefixEnd, Txn, type TxnResult } from "./store_txn.ts";

export interface Kv<T> {
  key: string;
  value: T;
  modRevision: string;
  createRevision: string;
  lease: string;
  /** The version of the code that wrote the document last (0: unversioned). */
  schemaVersion: number;
}

/** A document a listing skipped, and why. */
export interface Unreadable {
  key: string;
  reason: string;
}

/** A listing's limit, revision, and range within its prefix. */
export interface ListOptions {
  limit?: number;
  revision?: string;
  /** The first key (relative) of the range; default the prefix. */
  from?: string;
  /** The key (relative) the range ends before; default the prefix's end. */
  before?: string;
  /**
   * `descend`: highest key first. etcd then reads the whole range before it
   * applies `limit`: use it only on a range known to be small.
   */
  order?: "ascend" | "descend";
}

export interface StoreOptions {
  endpoints: string[];
  prefix: string;
  timeoutMs?: number;
}

/** Keys one `getMany()` request reads (etcd takes 128 operations). */
export const GET_BATCH = 64;

export class Store {
  readonly #prefix: string;
  readonly timeoutMs: number;
  readonly #leaseNotFound = new Set<(lease: string) => void>();

  constructor(readonly client: Etcd3, prefix: string, timeoutMs = 2000) {
    this.#prefix = prefix.endsWith("/") ? prefix : `${prefix}/`;
    this.timeoutMs = timeoutMs;
  }

  /** Connects to etcd. Retries and circuit breaking are left to callers. */
  static connect(opts: StoreOptions): Store {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const client = new Etcd3({
      hosts: opts.endpoints,
      dialTimeout: timeoutMs,
      faultHandling: {
        host: () => noop,
        global: noop,
        // etcd3 types this as a backoff state but uses it as a factory,
        // exactly like its own default `new ExponentialBackoff()`.
        watchBackoff: new ExponentialBackoff({
          initialDelay: 100,
          maxDelay: 1000,
        }) as unknown as IBackoff<unknown>,
      },
      defaultCallOptions: (ctx) =>
        ctx.isStream ? {} : { deadline: Date.now() + timeoutMs },
    });
    return new Store(client, opts.prefix, timeoutMs);
  }

  /** The full etcd key of a keyspace-relative key. */
  full(key: string): Buffer {
    return Buffer.from(this.#prefix + key);
  }

  /** The keyspace-relative key of a full etcd key. */
  rel(key: Buffer | string): string {
    return key.toString().slice(this.#prefix.length);
  }

  /** Decodes a stored key and value; an unreadable one is reported. */
  #decode<T>(kv: IKeyValue, schema: z.ZodType<T>): Kv<T> | Unreadable {
    const key = this.rel(kv.key);
    const modRevision = String(kv.mod_revision);
    const d = decodeDocument(kv.value.toString(), schema);
    if (!d.ok) {
      reportUnreadable(key, d.reason, modRevision);
      return { key, reason: d.reason };
    }
    return {
      key,
      value: d.value,
      modRevision,
      createRevision: String(kv.create_revision),
      lease: String(kv.lease),
      schemaVersion: d.schemaVersion,
    };
  }

  async #call<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw new UnavailableError(`Cannot ${what}: etcd: ${errMessage(err)}`, {
        cause: err,
      });
    }
  }

  /**
   * Reads one document, or null when the key does not exist. A document
   * that cannot be read throws UnreadableError naming the key: the caller
   * asked for this one document and must not take it for absent.
   */
  async get<T>(key: string, schema: z.ZodType<T>): Promise<Kv<T> | null> {
    const res = await this.#call(
      `read ${key}`,
      () => this.client.kv.range({ key: this.full(key) }),
    );
    if (!res.kvs.length) return null;
    const d = this.#decode(res.kvs[0], schema);
    if ("reason" in d) throw new UnreadableError(d.key, d.reason);
    return d;
  }

  /**
   * Reads documents by key, `GET_BATCH` keys per request (one transaction
   * of range reads), in the order of `keys`; absent ones are left out, and
   * ones that cannot be read are reported and named in `unreadable`, as
   * `list()` does.
   */
  async getMany<T>(
    keys: string[],
    schema: z.ZodType<T>,
    opts: Pick<ListOptions, "revision"> = {},
  ): Promise<{ items: Kv<T>[]; unreadable: Unreadable[] }> {
    const items: Kv<T>[] = [];
    const unreadable: Unreadable[] = [];
    for (let i = 0; i < keys.length; i += GET_BATCH) {
      const batch = keys.slice(i, i + GET_BATCH);
      const res = await this.#call(
        `read ${batch.length} keys`,
        () =>
          this.client.kv.txn({
            success: batch.map((k) => ({
              request_range: { key: this.full(k), revision: opts.revision },
            })),
          }),
      );
      for (const r of res.responses) {
        for (const kv of r.response_range.kvs) {
          const d = this.#decode(kv, schema);
          if ("reason" in d) unreadable.push(d);
          else items.push(d);
        }
      }
    }
    return { items, unreadable };
  }

  /**
   * Lists documents under a prefix with the header revision of the read.
   * Documents that cannot be read are left out of `items`, reported (log
   * line, metric) and named in `unreadable`: a caller that acts on what is
   * absent (e.g. removes a process without a VM) must spare those keys.
   */
  async list<T>(
    prefix: string,
    schema: z.ZodType<T>,
    opts: ListOptions = {},
  ): Promise<
    {
      items: Kv<T>[];
      unreadable: Unreadable[];
      revision: string;
      /** The range holds more keys than `limit` let through. */
      more: boolean;
    }
  > {
    const k = this.full(prefix);
    const res = await this.#call(`list ${prefix}`, () =>
      this.client.kv.range({
        key: opts.from === undefined ? k : this.full(opts.from),
        range_end: opts.before === undefined
          ? prefixEnd(k)
          : this.full(opts.before),
        limit: opts.limit ?? 0,
        revision: opts.revision,
        ...(opts.order === "descend"
          ? { sort_order: "Descend" as const, sort_target: "Key" as const }
          : {}),
      }));
    const items: Kv<T>[] = [];
    const unreadable: Unreadable[] = [];
    for (const kv of res.kvs) {
      const d = this.#decode(kv, schema);
      if ("reason" in d) unreadable.push(d);
      else items.push(d);
    }
    return {
      items,
      unreadable,
      revision: String(res.header.revision),
      more: res.more,
    };
  }

  /** Lists only the keys under a prefix (relative), cheap for indexes. */
  async keys(prefix: string, limit = 0): Promise<string[]> {
    const k = this.full(prefix);
    const res = await this.#call(`list ${prefix}`, () =>
      this.client.kv.range({
        key: k,
        range_end: prefixEnd(k),
        keys_only: true,
        limit,
      }));
    return res.kvs.map((kv) => this.rel(kv.key));
  }

  /** Counts the keys under a prefix (within `from`/`before`) unread. */
  async count(
    prefix: string,
    range: Pick<ListOptions, "from" | "before"> = {},
  ): Promise<number> {
    return (await this.countAt(prefix, range)).count;
  }

  /** `count()` at `range.revision` (default the latest), and that revision. */
  async countAt(
    prefix: string,
    range: Pick<ListOptions, "from" | "before" | "revision"> = {},
  ): Promise<{ count: number; revision: string }> {
    const k = this.full(prefix);
    const res = await this.#call(`count ${prefix}`, () =>
      this.client.kv.range({
        key: range.from === undefined ? k : this.full(range.from),
        range_end: range.before === undefined
          ? prefixEnd(k)
          : this.full(range.before),
        revision: range.revision,
        count_only: true,
      }));
    return { count: Number(res.count), revision: String(res.header.revision) };
  }

  /** Grants a lease of `ttlSeconds`; returns its id. */
  async grantLease(ttlSeconds: number): Promise<string> {
    const res = await this.#call(
      "grant a lease",
      () => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }),
    );
    return String(res.ID);
  }

  /** Revokes a lease (its keys go with it); an expired lease is no error. */
  async revokeLease(lease: string): Promise<void> {
    try {
      await this.client.leaseClient.leaseRevoke({ ID: lease });
    } catch (err) {
      if (/not found/i.test(errMessage(err))) return;
      throw new UnavailableError(
        `Cannot revoke lease ${lease}: etcd: ${errMessage(err)}`,
        { cause: err },
      );
    }
  }

  /**
   * Seconds since the lease was last granted or kept alive, or null when it
   * has expired. etcd counts TTLs in whole seconds, so this has a 1 s
   * resolution: `grantedTTL - TTL`.
   */
  async leaseAge(lease: string): Promise<number | null> {
    const res = await this.#call(
      `read lease ${lease}`,
      () => this.client.leaseClient.leaseTimeToLive({ ID: lease }),
    );
    const ttl = Number(res.TTL);
    if (!(ttl >= 0)) return null;
    return Math.max(0, Number(res.grantedTTL) - ttl);
  }

  /**
   * Calls `f` with each lease of a transaction etcd refused because a lease
   * was not found (revoked or expired while a caller still used it), so
   * whoever hands leases out stops handing that one out
   * (core/lease_pool.ts). Returns the unsubscribe function.
   */
  onLeaseNotFound(f: (lease: string) => void): () => void {
    this.#leaseNotFound.add(f);
    return () => this.#leaseNotFound.delete(f);
  }

  /** Tells the `onLeaseNotFound` subscribers (called by `Txn.commit`). */
  leaseNotFound(leases: string[]): void {
    for (const f of this.#leaseNotFound) leases.forEach((l) => f(l));
  }

  /** Starts a transaction. */
  txn(): Txn {
    return new Txn(this);
  }

  close(): void {
    this.client.close();
  }
}
