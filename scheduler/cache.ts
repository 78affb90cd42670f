/**
 * The placement cache: an in-memory copy of `host/`, `alive/` and `alloc/`
 * kept current by watches (list, then watch from the listing's revision;
 * re-list on any watch error: DESIGN.md rule 4), with every document's mod
 * revision. Placement reads candidates from it instead of listing three
 * prefixes per VM, and writes the reservation in a transaction comparing
 * the cached `alloc/<host>` revision: a stale cache costs a lost compare
 * and a retry, never an overcommitted host.
 *
 * One cache per store (etcd endpoint and prefix) and process, found with
 * `PlacementCache.for(store)`: the API's `POST /v1/vms` and the worker's
 * `vm.create` handler place through it (place.ts) when it exists and fall
 * back to their old paths (pending VM; three listings) when it does not.
 *
 * Within one process, writes of the same host's reservation are serialized
 * (`withHost`) and hosts with a write in flight are marked `busy`, so
 * concurrent creates in one API process spread over hosts instead of
 * losing compares to each other.
 *
 * @example
 * ```ts
 * const cache = PlacementCache.start(store, { log });
 * await cache.ready;
 * const pick = choose(cache.candidates(), { cpus: 1, memoryMiB: 128 });
 * // ... txn.ifModRevision(keys.alloc(host), cache.alloc(host).modRevision)
 * await cache.close();
 * ```
 */
import type { z } from "zod";
import { idOf, keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Alive, Alloc, Host, serving } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import {
  decodeRaw,
  type RawKv,
  type WatchEvent,
  watchPrefix,
} from "../core/watch.ts";
import { type Candidate, usage } from "./resources.ts";

interface Entry<T> {
  /** null: deleted (a tombstone, so an older event cannot bring it back). */
  value: T | null;
  rev: bigint;
  /** For allocs: the summed reservations, computed once per document. */
  used?: Candidate["used"];
}

/** A cached reservation document and the mod revision to compare ("0": absent). */
export interface CachedAlloc {
  value: Alloc | null;
  modRevision: string;
}

export interface PlacementCacheOptions {
  log?: Logger;
}

const registry = new WeakMap<Store, PlacementCache>();

export class PlacementCache {
  /** Resolves once all three prefixes have been listed. */
  readonly ready: Promise<void>;
  readonly #store: Store;
  readonly #log?: Logger;
  readonly #stop = new AbortController();
  readonly #hosts = new Map<string, Entry<Host>>();
  readonly #alive = new Map<string, Entry<Alive>>();
  readonly #allocs = new Map<string, Entry<Alloc>>();
  /** Per-host chains of in-process reservation writes. */
  readonly #locks = new Map<string, { tail: Promise<unknown>; n: number }>();
  #watches: Promise<void>[] = [];
  #isReady = false;
  /** Bumped on every change; `candidates()` rebuilds only after a change. */
  #version = 0;
  #built?: { version: number; list: Candidate[] };
  readonly #listeners = new Set<() => void>();

  private constructor(store: Store, opts: PlacementCacheOptions) {
    this.#store = store;
    this.#log = opts.log;
    let resolve!: () => void;
    this.ready = new Promise<void>((r) => resolve = r);
    const pending = new Set(["host", "alive", "alloc"]);
    const listed = (what: string) => {
      pending.delete(what);
      if (pending.size === 0 && !this.#isReady) {
        this.#isReady = true;
        resolve();
      }
    };
    this.#watches = [
      this.#watch(keys.hosts, this.#hosts, Host, () => listed("host")),
      this.#watch(keys.alives, this.#alive, Alive, () => listed("alive")),
      this.#watch(keys.allocs, this.#allocs, Alloc, () => listed("alloc")),
    ];
  }

  /**
   * Starts the cache of `store` (or returns the one already running) and
   * registers it, so `PlacementCache.for(store)` finds it.
   */
  static start(
    store: Store,
    opts: PlacementCacheOptions = {},
  ): PlacementCache {
    const running = registry.get(store);
    if (running) return running;
    const cache = new PlacementCache(store, opts);
    registry.set(store, cache);
    return cache;
  }

  /** The running cache of `store`, if one was started. */
  static for(store: Store): PlacementCache | undefined {
    return registry.get(store);
  }

  /** True once every prefix has been listed. */
  get isReady(): boolean {
    return this.#isReady;
  }

  /** Waits for `ready` at most `ms`; true when ready. */
  async waitReady(ms: number): Promise<boolean> {
    if (this.#isReady) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.ready,
      new Promise<void>((r) => timer = setTimeout(r, ms)),
    ]);
    clearTimeout(timer);
    return this.#isReady;
  }

  /** Stops the watches and unregisters the cache. */
  async close(): Promise<void> {
    if (registry.get(this.#store) === this) registry.delete(this.#store);
    this.#stop.abort();
    await Promise.allSettled(this.#watches);
  }

  /** Every registered host as a placement candidate (see choose()). */
  candidates(): Candidate[] {
    if (this.#built?.version !== this.#version) {
      const list: Candidate[] = [];
      for (const [name, h] of this.#hosts) {
        if (!h.value) continue;
        const a = this.#allocs.get(name);
        list.push({
          host: h.value,
          alive: serving(this.#alive.get(name)?.value),
          alloc: a?.value ?? null,
          ...(a?.used ? { used: a.used } : {}),
        });
      }
      list.sort((a, b) => a.host.name.localeCompare(b.host.name));
      this.#built = { version: this.#version, list };
    }
    const list = this.#built.list;
    if (this.#locks.size === 0) return list;
    return list.map((c) =>
      this.#locks.has(c.host.name) ? { ...c, busy: true } : c
    );
  }

  /** One host as a candidate; undefined when it is not registered. */
  candidate(name: string): Candidate | undefined {
    const h = this.#hosts.get(name)?.value;
    if (!h) return undefined;
    const a = this.#allocs.get(name);
    return {
      host: h,
      alive: serving(this.#alive.get(name)?.value),
      alloc: a?.value ?? null,
      ...(a?.used ? { used: a.used } : {}),
      ...(this.#locks.has(name) ? { busy: true } : {}),
    };
  }

  /** The host's `alive/` document (its `lease` is what to compare). */
  aliveOf(name: string): Alive | null {
    return this.#alive.get(name)?.value ?? null;
  }

  /** The cached reservations of `host` with the revision to compare. */
  alloc(host: string): CachedAlloc {
    const e = this.#allocs.get(host);
    return e?.value
      ? { value: e.value, modRevision: String(e.rev) }
      : { value: null, modRevision: "0" };
  }

  /**
   * Records a reservation this process just wrote (at `modRevision`), so
   * the next placement does not wait for the watch to bring it.
   */
  applyAlloc(host: string, value: Alloc | null, modRevision: string): void {
    this.#apply(this.#allocs, host, value, BigInt(modRevision));
  }

  /** Reads `alloc/<host>` again, e.g. after a lost compare. */
  async refreshAlloc(host: string): Promise<CachedAlloc> {
    const kv = await this.#store.get(keys.alloc(host), Alloc);
    if (kv) this.applyAlloc(host, kv.value, kv.modRevision);
    else {
      const e = this.#allocs.get(host);
      if (e?.value) {
        // Deleted at an unknown revision: drop it; later events still apply.
        this.#allocs.set(host, { value: null, rev: e.rev });
        this.#changed();
      }
    }
    return this.alloc(host);
  }

  /**
   * Runs `fn` after every other in-process write of `host`'s reservation
   * (`withHost` of this cache); the host shows `busy` meanwhile.
   */
  async withHost<T>(host: string, fn: () => Promise<T>): Promise<T> {
    const lock = this.#locks.get(host) ?? { tail: Promise.resolve(), n: 0 };
    lock.n++;
    const run = lock.tail.catch(() => {}).then(fn);
    lock.tail = run;
    this.#locks.set(host, lock);
    try {
      return await run;
    } finally {
      if (--lock.n === 0) this.#locks.delete(host);
    }
  }

  /**
   * Calls `listener` after every change of a host, alive or reservation
   * document (synchronously: it should only schedule work); returns the
   * function that removes it.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    this.#version++;
    for (const l of this.#listeners) l();
  }

  #apply<T>(
    map: Map<string, Entry<T>>,
    name: string,
    value: T | null,
    rev: bigint,
  ): void {
    const cur = map.get(name);
    if (cur && cur.rev >= rev) return;
    const e: Entry<T> = { value, rev };
    if (value && (map as Map<string, unknown>) === this.#allocs) {
      e.used = usage(value as unknown as Alloc);
    }
    map.set(name, e);
    this.#changed();
  }

  #watch<T>(
    prefix: string,
    map: Map<string, Entry<T>>,
    schema: z.ZodType<T>,
    listed: () => void,
  ): Promise<void> {
    return watchPrefix(this.#store, prefix, {
      signal: this.#stop.signal,
      log: this.#log,
      onReset: (items: RawKv[]) => {
        map.clear();
        for (const kv of items) {
          const value = decodeRaw(kv, schema);
          if (value) {
            this.#apply(map, idOf(kv.key), value, BigInt(kv.modRevision));
          }
        }
        this.#changed();
        listed();
      },
      onEvent: (ev: WatchEvent) => {
        const value = ev.type === "put" ? decodeRaw(ev, schema) : null;
        this.#apply(map, idOf(ev.key), value, BigInt(ev.modRevision));
      },
    });
  }
}
