/**
 * The claim loop of one worker incarnation: watches the host's queue, the
 * `any` queue and the claim keys, and claims what is due, up to the
 * concurrency limit, handing each claimed (or resumed) task to `run`.
 * `wake()` makes VMs waiting for capacity due before their back-off ends.
 *
 * @example
 * ```ts
 * const loop = new ClaimLoop({ store, host, worker: id, concurrency: 4,
 *   log, signal, run: (task) => runner.run(task) });
 * await Promise.all(loop.watch());
 * ```
 */
import { UnreadableError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Claim, Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import type { CapacityWait } from "../core/task_doc.ts";
import { watchPrefix } from "../core/watch.ts";
import { claim, resume, type WorkerId } from "../tasks/queue.ts";
import { leaseOf } from "./failure_watch.ts";

/** Options of a `ClaimLoop`. */
export interface ClaimLoopOptions {
  store: Store;
  /** This host: its queue is watched besides `any`. */
  host: string;
  /** The incarnation that claims (host name and lease). */
  worker: WorkerId;
  /** At most this many tasks claimed or running at once. */
  concurrency: number;
  log: Logger;
  /** Aborted when the session ends or the worker stops: nothing is claimed. */
  signal: AbortSignal;
  /** Runs a task this incarnation claimed or resumed. */
  run: (task: Task) => Promise<void>;
  /** Called when a VM waiting for capacity is queued (see `wake()`). */
  onWaiting?: () => void;
}

interface Queued {
  target: string;
  notBefore: number;
  /** A VM waiting for capacity: what it needs (core/task_doc.ts). */
  need?: CapacityWait["need"];
  /** Woken by `wake()`: claimed before `notBefore`. */
  early?: boolean;
}

/** A task document that cannot be read is tried again after this long. */
const UNREADABLE_RETRY_MS = 10_000;
/** A task whose claim or run failed (etcd unreachable) is tried again after this long. */
const FAILED_RETRY_MS = 500;

/** Watches the queues and claims; claims and runs what is due. */
export class ClaimLoop {
  readonly #o: ClaimLoopOptions;
  /** Runnable tasks seen in this host's queues, by task id. */
  readonly #queued = new Map<string, Queued>();
  /** Task ids another worker holds a claim on. */
  readonly #claimedElsewhere = new Set<string>();
  /** Task ids this worker is claiming or running. */
  readonly #mine = new Set<string>();
  readonly #running = new Set<Promise<void>>();
  #wake?: ReturnType<typeof setTimeout>;
  /** An ordered shutdown is about to finish: claim nothing new. */
  #closing = false;

  constructor(opts: ClaimLoopOptions) {
    this.#o = opts;
  }

  /** The watches of the host's queue, the `any` queue and the claims. */
  watch(): Promise<void>[] {
    return [
      this.#watchQueue(this.#o.host),
      this.#watchQueue("any"),
      this.#watchClaims(),
    ];
  }

  /** Whether a task for this host (not `any`) is queued. */
  busy(): boolean {
    return [...this.#queued.values()].some((q) => q.target === this.#o.host);
  }

  /** With `true`, claims nothing new until called with `false`. */
  setClosing(closing: boolean): void {
    this.#closing = closing;
    if (!closing) this.pump();
  }

  /** Resolves when every task claimed so far has finished. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }

  /**
   * Makes the VMs waiting for capacity whose need `fits` due now (their
   * `notBefore` is a back-off, not a schedule); returns how many.
   */
  wake(fits: (need: CapacityWait["need"]) => boolean): number {
    const now = Date.now();
    let n = 0;
    for (const q of this.#queued.values()) {
      if (q.need && !q.early && q.notBefore > now && fits(q.need)) {
        q.early = true;
        n++;
      }
    }
    if (n) this.pump();
    return n;
  }

  /** Cancels the timer that waits for the next task to fall due. */
  stop(): void {
    clearTimeout(this.#wake);
  }

  /** Claims what is due, up to the concurrency limit; re-arms a timer. */
  pump(): void {
    if (this.#o.signal.aborted || this.#closing) return;
    clearTimeout(this.#wake);
    const now = Date.now();
    let next = Infinity;
    const ids = [...this.#queued.keys()].sort();
    for (const id of ids) {
      if (this.#mine.size >= this.#o.concurrency) break;
      if (this.#mine.has(id) || this.#claimedElsewhere.has(id)) continue;
      const q = this.#queued.get(id)!;
      if (q.notBefore > now && !q.early) {
        next = Math.min(next, q.notBefore);
        continue;
      }
      this.#mine.add(id);
      const p = this.#claimAndRun(id, q.early).catch((err) => {
        this.#o.log.error("task runner failed", {
          task: id,
          error: String(err),
        });
        // etcd unreachable or the handler failed: not again at once, or an
        // outage turns into a loop of thousands of attempts a second.
        const q = this.#queued.get(id);
        if (q) {
          q.notBefore = Math.max(q.notBefore, Date.now() + FAILED_RETRY_MS);
          q.early = false;
        }
      }).finally(() => {
        this.#mine.delete(id);
        this.#running.delete(p);
        this.pump();
      });
      this.#running.add(p);
    }
    if (next < Infinity) {
      this.#wake = setTimeout(() => this.pump(), next - now + 5);
    }
  }

  async #watchQueue(target: string): Promise<void> {
    const prefix = keys.queueOf(target);
    const parse = (v: string): Queued => {
      try {
        const e = JSON.parse(v);
        const need = e.wait?.need;
        return {
          target,
          notBefore: Number(e.notBefore) || 0,
          ...(need && typeof need.cpus === "number" ? { need } : {}),
        };
      } catch {
        return { target, notBefore: 0 };
      }
    };
    await watchPrefix(this.#o.store, prefix, {
      signal: this.#o.signal,
      log: this.#o.log,
      onReset: (items) => {
        for (const [id, q] of this.#queued) {
          if (q.target === target) this.#queued.delete(id);
        }
        for (const it of items) {
          this.#queued.set(it.key.slice(prefix.length), parse(it.value));
        }
        this.#o.onWaiting?.();
        this.pump();
      },
      onEvent: (ev) => {
        const id = ev.key.slice(prefix.length);
        if (ev.type === "delete") this.#queued.delete(id);
        else {
          const q = parse(ev.value);
          this.#queued.set(id, q);
          this.#claimedElsewhere.delete(id);
          if (q.need) this.#o.onWaiting?.();
        }
        this.pump();
      },
    });
  }

  async #watchClaims(): Promise<void> {
    await watchPrefix(this.#o.store, keys.claims, {
      signal: this.#o.signal,
      log: this.#o.log,
      onReset: (items) => {
        this.#claimedElsewhere.clear();
        for (const it of items) {
          const id = it.key.slice(keys.claims.length);
          // Claims of this (adopted) lease are resumed by pump().
          if (
            this.#mine.has(id) || leaseOf(it.value) === this.#o.worker.lease
          ) {
            continue;
          }
          this.#claimedElsewhere.add(id);
        }
        this.pump();
      },
      onEvent: (ev) => {
        const id = ev.key.slice(keys.claims.length);
        if (ev.type === "delete") this.#claimedElsewhere.delete(id);
        else if (!this.#mine.has(id)) this.#claimedElsewhere.add(id);
        this.pump();
      },
    });
  }

  async #claimAndRun(id: string, early = false): Promise<void> {
    const { store, worker } = this.#o;
    // A claim this lease already holds was made by the previous process of
    // this host whose lease was adopted: resume it.
    let claimed;
    try {
      claimed = await claim(store, id, worker, new Date(), { early }) ??
        await resume(store, id, worker);
    } catch (err) {
      if (!(err instanceof UnreadableError)) throw err;
      // Corrupt, or a newer version's (the store reported it): try again
      // later, not in a loop.
      const q = this.#queued.get(id);
      if (q) q.notBefore = Date.now() + UNREADABLE_RETRY_MS;
      return;
    }
    if (!claimed) {
      // Someone else holds it, or it is finished or not due: wait for news.
      const c = await store.get(keys.claim(id), Claim);
      if (c) this.#claimedElsewhere.add(id);
      else {
        const t = await store.get(keys.task(id), Task);
        const q = this.#queued.get(id);
        if (t && q && t.value.notBefore > Date.now()) {
          q.notBefore = t.value.notBefore;
          q.early = false;
        } else if (!t || t.value.state !== "queued") this.#queued.delete(id);
      }
      return;
    }
    await this.#o.run(claimed.value);
  }
}
