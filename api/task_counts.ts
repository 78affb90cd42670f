/**
 * Task counts kept from watches, for `/metrics`: the task documents by kind
 * and state (`task/`), the runnable tasks by target (`queue/`), the age of
 * the oldest runnable task per target (queued, due, not yet claimed), and
 * every task change handed to a {@linkcode TaskFlow} (outcomes, durations,
 * retries, failovers: api/task_flow.ts). Each prefix is listed once, then
 * followed by its watch (core/watch.ts; a watch error lists again), so a
 * scrape reads memory and costs etcd nothing, however many tasks there are.
 *
 * @example
 * ```ts
 * const counts = TaskCounts.start(store, { log });
 * await counts.waitReady(2000);
 * counts.tasks(); // [{ kind: "vm.create", state: "queued", n: 2 }]
 * await counts.close();
 * ```
 */
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { type SeenTask, TaskFlow } from "./task_flow.ts";
import {
  decodeRaw,
  type RawKv,
  type WatchEvent,
  watchPrefix,
} from "../core/watch.ts";

/** Keys by the label they are counted under, and the count per label. */
class Tally {
  readonly #labelOf = new Map<string, string>();
  readonly #count = new Map<string, number>();

  reset(entries: [key: string, label: string | null][]): void {
    this.#labelOf.clear();
    this.#count.clear();
    for (const [key, label] of entries) this.set(key, label);
  }

  /** Counts `key` under `label` (null: not counted, e.g. deleted). */
  set(key: string, label: string | null): void {
    const old = this.#labelOf.get(key);
    if (old === label) return;
    if (old !== undefined) {
      const n = this.#count.get(old)! - 1;
      if (n === 0) this.#count.delete(old);
      else this.#count.set(old, n);
      this.#labelOf.delete(key);
    }
    if (label === null) return;
    this.#labelOf.set(key, label);
    this.#count.set(label, (this.#count.get(label) ?? 0) + 1);
  }

  entries(): [string, number][] {
    return [...this.#count];
  }
}

export interface TaskCountsOptions {
  log?: Logger;
}

/** A queued task: its target and since when it may run (epoch ms). */
interface Waiting {
  target: string;
  since: number;
}

export class TaskCounts {
  /** Resolves once both prefixes have been listed. */
  readonly ready: Promise<void>;
  /** What tasks did, from the same watch (api/task_flow.ts). */
  readonly flow = new TaskFlow();
  readonly #stop = new AbortController();
  readonly #tasks = new Tally();
  readonly #queue = new Tally();
  /** State and attempts of each task document, by key. */
  readonly #seen = new Map<string, SeenTask>();
  /** Queued tasks, by key. */
  readonly #waiting = new Map<string, Waiting>();
  readonly #watches: Promise<void>[];
  #isReady = false;

  private constructor(store: Store, opts: TaskCountsOptions) {
    let resolve!: () => void;
    this.ready = new Promise<void>((r) => resolve = r);
    const pending = new Set<string>([keys.tasks, keys.queues]);
    const listed = (prefix: string) => {
      pending.delete(prefix);
      if (pending.size === 0 && !this.#isReady) {
        this.#isReady = true;
        resolve();
      }
    };
    const follow = (
      prefix: string,
      tally: Tally,
      label: (kv: RawKv) => string | null,
    ) =>
      watchPrefix(store, prefix, {
        signal: this.#stop.signal,
        log: opts.log,
        onReset: (items) => {
          tally.reset(items.map((kv) => [kv.key, label(kv)]));
          listed(prefix);
        },
        onEvent: (ev: WatchEvent) =>
          tally.set(ev.key, ev.type === "put" ? label(ev) : null),
      });
    this.#watches = [
      watchPrefix(store, keys.tasks, {
        signal: this.#stop.signal,
        log: opts.log,
        onReset: (items) => {
          const known = new Set(items.map((kv) => kv.key));
          for (const key of this.#seen.keys()) {
            if (!known.has(key)) this.#task(key, null, false);
          }
          for (const kv of items) {
            this.#task(kv.key, decodeRaw(kv, Task), false);
          }
          listed(keys.tasks);
        },
        onEvent: (ev: WatchEvent) =>
          this.#task(
            ev.key,
            ev.type === "put" ? decodeRaw(ev, Task) : null,
            true,
          ),
      }),
      // queue/<target>/<task id>: the target is in the key.
      follow(keys.queues, this.#queue, (kv) => kv.key.split("/")[1] ?? null),
    ];
  }

  /** Takes one task document (null: gone or unreadable). */
  #task(key: string, t: Task | null, live: boolean): void {
    this.#tasks.set(key, t ? `${t.kind}\t${t.state}` : null);
    if (t) this.flow.seen(this.#seen.get(key), t, live);
    if (t) this.#seen.set(key, { state: t.state, attempts: t.attempts });
    else this.#seen.delete(key);
    if (t?.state !== "queued") {
      this.#waiting.delete(key);
      return;
    }
    const since = Math.max(Date.parse(t.updatedAt) || 0, t.notBefore);
    this.#waiting.set(key, { target: t.target, since });
  }

  /** Lists and watches `task/` and `queue/` of `store` until `close()`. */
  static start(store: Store, opts: TaskCountsOptions = {}): TaskCounts {
    return new TaskCounts(store, opts);
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

  /** Task documents by kind and state (unreadable ones left out). */
  tasks(): { kind: string; state: string; n: number }[] {
    return this.#tasks.entries().map(([label, n]) => {
      const [kind, state] = label.split("\t");
      return { kind, state, n };
    });
  }

  /**
   * Per target with tasks in the queue index or queued: seconds since the
   * oldest queued task that is due (its `notBefore` passed) could run,
   * from the later of its queueing and its `notBefore`; 0 when none is.
   */
  oldestRunnable(now = Date.now()): { target: string; seconds: number }[] {
    const oldest = new Map<string, number>();
    for (const [target] of this.#queue.entries()) oldest.set(target, now);
    for (const { target, since } of this.#waiting.values()) {
      const o = oldest.get(target) ?? now;
      oldest.set(target, since <= now && since < o ? since : o);
    }
    return [...oldest].map(([target, since]) => ({
      target,
      seconds: (now - since) / 1000,
    }));
  }

  /** Runnable tasks in the queue index, by target. */
  queueDepth(): { target: string; n: number }[] {
    return this.#queue.entries().map(([target, n]) => ({ target, n }));
  }

  /** Stops the watches. */
  async close(): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled(this.#watches);
  }
}
