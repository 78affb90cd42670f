/**
 * One etcd watch per prefix for the whole API process, fanned out to its
 * subscribers (the `GET /v1/events` streams, api/events.ts): started by the
 * first subscriber of a prefix, stopped when the last one leaves. Each event
 * is decoded once (core/watch.ts `decodeRaw`) and handed to every
 * subscriber synchronously; subscribers keep their own bounded buffers.
 * When the watch breaks (a compacted revision, a canceled watch), events
 * may have been missed: every subscriber of that prefix gets `onReset()`
 * and is dropped (it lists again and subscribes anew), and the next
 * subscriber starts a new watch.
 *
 * `subscribe()` resolves once the revision the watch starts after is
 * known, so a snapshot read after it (at revision S) plus the events above
 * S misses nothing.
 *
 * @example
 * ```ts
 * const hub = new EventHub(store);
 * const leave = await hub.subscribe({ prefix: keys.vms, schema: Vm }, {
 *   onEvent: (ev) => console.log(ev.type, ev.id, ev.modRevision),
 *   onReset: () => console.log("list again"),
 * });
 * leave();
 * await hub.close();
 * ```
 */
import type { z } from "zod";
import { UnavailableError } from "../core/errors.ts";
import { type Logger, logger } from "../core/log.ts";
import type { Store } from "../core/store.ts";
import { decodeRaw, watchOnce } from "../core/watch.ts";

/** What a hub watches: a keyspace prefix and the schema of its documents. */
export interface Feed<T> {
  prefix: string;
  schema: z.ZodType<T>;
}

/** A change under a feed's prefix. */
export interface HubEvent<T> {
  type: "put" | "delete";
  /** The key after the prefix (a VM or task id). */
  id: string;
  modRevision: string;
  /** The document of a put; null for a delete. */
  value: T | null;
}

/** Who gets a feed's events. */
export interface Subscriber<T> {
  onEvent(ev: HubEvent<T>): void;
  /** The subscription ended (watch broken or hub closed): list again. */
  onReset(why: string): void;
}

interface FeedState {
  // deno-lint-ignore no-explicit-any
  subs: Set<Subscriber<any>>;
  ctl: AbortController;
  /** The revision the watch starts after. */
  ready: Promise<string>;
  done: Promise<void>;
}

/** Shared etcd watches of one API process (see the module comment). */
export class EventHub {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #feeds = new Map<string, FeedState>();
  #watching = 0;

  constructor(
    store: Store,
    { log = logger({ component: "events" }) }: { log?: Logger } = {},
  ) {
    this.#store = store;
    this.#log = log;
  }

  /** etcd watches this hub holds open now (one per prefix in use). */
  get watching(): number {
    return this.#watching;
  }

  /** Subscribers of `prefix` now. */
  subscribers(prefix: string): number {
    return this.#feeds.get(prefix)?.subs.size ?? 0;
  }

  /**
   * Adds `sub` to the feed, starting its watch when it is the first;
   * resolves (to the function that leaves) once the watch's start revision
   * is known. Throws UnavailableError when etcd cannot be read.
   */
  async subscribe<T>(feed: Feed<T>, sub: Subscriber<T>): Promise<() => void> {
    let f = this.#feeds.get(feed.prefix);
    if (!f) {
      f = this.#start(feed);
      this.#feeds.set(feed.prefix, f);
    }
    const state = f;
    state.subs.add(sub);
    try {
      await state.ready;
    } catch (err) {
      this.#leave(feed.prefix, state, sub);
      throw err;
    }
    return () => this.#leave(feed.prefix, state, sub);
  }

  /**
   * Ends every subscription (each gets `onReset`) and every watch. The hub
   * can be subscribed again after.
   */
  async close(): Promise<void> {
    const feeds = [...this.#feeds.values()];
    this.#feeds.clear();
    for (const f of feeds) {
      f.ctl.abort();
      for (const s of [...f.subs]) s.onReset("the API is shutting down");
      f.subs.clear();
    }
    await Promise.all(feeds.map((f) => f.done));
  }

  // deno-lint-ignore no-explicit-any
  #leave(prefix: string, f: FeedState, sub: Subscriber<any>): void {
    f.subs.delete(sub);
    if (f.subs.size > 0) return;
    f.ctl.abort();
    if (this.#feeds.get(prefix) === f) this.#feeds.delete(prefix);
  }

  #start<T>(feed: Feed<T>): FeedState {
    const { prefix, schema } = feed;
    const store = this.#store;
    const ctl = new AbortController();
    const subs = new Set<Subscriber<T>>();
    const ready = store.client.kv.range({ key: store.full(prefix) }).then(
      (res) => String(res.header.revision),
      (err) => {
        throw new UnavailableError(
          `Cannot watch ${prefix}: etcd: ${(err as Error).message}`,
          { cause: err },
        );
      },
    );
    const fanOut = (ev: HubEvent<T>) => {
      for (const s of [...subs]) {
        try {
          s.onEvent(ev);
        } catch (err) {
          this.#log.error("event subscriber failed", {
            prefix,
            error: String(err),
          });
        }
      }
    };
    const run = async () => {
      let revision: string;
      try {
        revision = await ready;
      } catch {
        return;
      }
      if (ctl.signal.aborted) return;
      this.#watching++;
      this.#log.info("watch started", { prefix, revision });
      try {
        await watchOnce(store, prefix, revision, {
          signal: ctl.signal,
          log: this.#log,
          onEvent: (ev) => {
            const value = ev.type === "put" ? decodeRaw(ev, schema) : null;
            if (ev.type === "put" && value === null) return;
            fanOut({
              type: ev.type,
              id: ev.key.slice(prefix.length),
              modRevision: ev.modRevision,
              value,
            });
          },
        });
      } finally {
        this.#watching--;
        this.#log.info("watch stopped", { prefix });
      }
      if (ctl.signal.aborted) return;
      // Broken: events may be lost. Subscribers list again.
      if (this.#feeds.get(prefix) === state) this.#feeds.delete(prefix);
      ctl.abort();
      for (const s of [...subs]) s.onReset("the watch broke");
      subs.clear();
    };
    const state: FeedState = { subs, ctl, ready, done: Promise.resolve() };
    state.done = run().catch((err) => {
      this.#log.error("watch failed", { prefix, error: String(err) });
    });
    // A failed start is reported to subscribe(); nobody else awaits it.
    ready.catch(() => {});
    return state;
  }
}
