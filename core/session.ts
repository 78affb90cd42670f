/**
 * A lease session: one lease per process, kept alive every TTL/3, with the
 * process's own deadline (last good keep-alive + TTL - margin). When the
 * deadline passes or etcd says the lease is gone, `signal` aborts: the owner
 * must stop every side effect (DESIGN.md rule 2). The etcd3 library's own
 * `lost` event fires far too late (about 2 x TTL) to be used for this.
 * Times are in `monotonicMs()` (CLOCK_BOOTTIME, core/clock.ts) unless a
 * `now` is given: a wall clock stepped back would postpone the deadline.
 *
 * @example
 * ```ts
 * const session = await Session.open(store, { ttlSeconds: 3, marginMs: 1000 });
 * await store.txn().put("alive/h1", doc, { lease: session.lease }).commit();
 * session.signal.addEventListener("abort", () => fence());
 * ```
 */
import type { Store } from "./store.ts";
import type { Logger } from "./log.ts";
import { monotonicMs } from "./clock.ts";

export interface SessionOptions {
  ttlSeconds: number;
  marginMs: number;
  log?: Logger;
  /** Called after every acknowledged keep-alive with the new deadline. */
  onDeadline?: (deadline: number) => void;
  /** The clock of deadlines, in ms; default `monotonicMs` (never steps). */
  now?: () => number;
}

/** Raised (as the abort reason) when the session ends. */
export class SessionLostError extends Error {
  override name = "SessionLostError";
}

export class Session {
  readonly #controller = new AbortController();
  #deadline: number;
  #lastGood: number;
  #timer?: ReturnType<typeof setInterval>;
  #deadlineTimer?: ReturnType<typeof setTimeout>;
  #closed = false;

  private constructor(
    readonly store: Store,
    readonly lease: string,
    readonly opts: SessionOptions,
    granted: number,
  ) {
    this.#lastGood = granted;
    this.#deadline = granted + opts.ttlSeconds * 1000 - opts.marginMs;
  }

  /** Grants a lease and starts keeping it alive. */
  static async open(store: Store, opts: SessionOptions): Promise<Session> {
    const now = opts.now ?? monotonicMs;
    const sent = now();
    const res = await store.client.leaseClient.leaseGrant({
      TTL: opts.ttlSeconds,
    });
    if (res.error) throw new Error(`Cannot grant lease: ${res.error}`);
    const s = new Session(store, String(res.ID), opts, sent);
    s.#schedule();
    opts.onDeadline?.(s.deadline);
    return s;
  }

  /**
   * Takes over an existing lease (e.g. the one a previous process of this
   * host held): a keep-alive proves it still exists. Returns null when it
   * has expired.
   */
  static async adopt(
    store: Store,
    lease: string,
    opts: SessionOptions,
  ): Promise<Session | null> {
    const now = opts.now ?? monotonicMs;
    const sent = now();
    const ttl = await keepAliveOnce(store, lease, store.timeoutMs);
    if (ttl <= 0) return null;
    const s = new Session(store, lease, opts, sent);
    s.#schedule();
    opts.onDeadline?.(s.deadline);
    return s;
  }

  /** Aborts when the session is lost or closed. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * The moment (in the session's clock, default `monotonicMs()`) after
   * which this process must assume its lease is gone.
   */
  get deadline(): number {
    return this.#deadline;
  }

  /**
   * Checks the deadline now, not when its timer fires (after a pause such as
   * SIGSTOP, other callbacks may run first): past it, the session ends at
   * once and `signal` aborts. Call before a side effect that must not
   * outlive the lease, e.g. starting a VM process. Returns true while alive.
   */
  check(): boolean {
    if (this.signal.aborted) return false;
    if (this.#now() < this.#deadline) return true;
    this.#lose(
      `no keep-alive acknowledged for ${
        this.#now() - this.#lastGood
      } ms (deadline passed)`,
    );
    return false;
  }

  /** When (session clock) the last keep-alive that etcd acknowledged was sent. */
  get lastKeepAlive(): number {
    return this.#lastGood;
  }

  #now(): number {
    return (this.opts.now ?? monotonicMs)();
  }

  #schedule(): void {
    const every = Math.max(50, Math.floor(this.opts.ttlSeconds * 1000 / 3));
    this.#timer = setInterval(() => this.#keepAlive(), every);
    this.#armDeadline();
  }

  #armDeadline(): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = setTimeout(() => {
      if (this.check()) this.#armDeadline();
    }, Math.max(0, this.#deadline - this.#now()));
  }

  async #keepAlive(): Promise<void> {
    if (this.#closed || this.signal.aborted) return;
    const sent = this.#now();
    const wait = Math.max(50, this.#deadline - sent);
    try {
      const ttl = await keepAliveOnce(this.store, this.lease, wait);
      if (this.signal.aborted) return;
      if (ttl <= 0) {
        this.#lose("etcd reports the lease expired");
        return;
      }
      if (sent > this.#lastGood) {
        this.#lastGood = sent;
        this.#deadline = sent + this.opts.ttlSeconds * 1000 -
          this.opts.marginMs;
        this.#armDeadline();
        this.opts.onDeadline?.(this.#deadline);
      }
    } catch (err) {
      this.opts.log?.warn("lease keep-alive failed", {
        lease: this.lease,
        error: String(err),
      });
    }
  }

  #lose(why: string): void {
    if (this.signal.aborted) return;
    this.#stopTimers();
    this.opts.log?.error("lease session lost", { lease: this.lease, why });
    this.#controller.abort(
      new SessionLostError(`Lease ${this.lease} lost: ${why}`),
    );
  }

  #stopTimers(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#deadlineTimer);
  }

  /** Stops keep-alives and revokes the lease (its keys vanish at once). */
  async close({ revoke = true } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    if (!this.signal.aborted) {
      this.#controller.abort(new SessionLostError("session closed"));
    }
    if (revoke) {
      await this.store.client.leaseClient.leaseRevoke({ ID: this.lease }, {
        deadline: Date.now() + this.store.timeoutMs,
      }).catch(() => {});
    }
  }
}

/** Sends one keep-alive; resolves with the remaining TTL (0: expired). */
async function keepAliveOnce(
  store: Store,
  lease: string,
  timeoutMs: number,
): Promise<number> {
  const stream = await store.client.leaseClient.leaseKeepAlive({
    deadline: Date.now() + timeoutMs,
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`keep-alive timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      stream.on("data", (res: { TTL: string }) => {
        clearTimeout(t);
        resolve(Number(res.TTL));
      });
      stream.on("error", (err: Error) => {
        clearTimeout(t);
        reject(err);
      });
      stream.write({ ID: lease });
    });
  } finally {
    stream.end();
  }
}
