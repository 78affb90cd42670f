/**
 * The body of one server-sent event stream with a bounded buffer: frames
 * wait in memory only until the client reads them, at most
 * `maxBufferBytes`. A client that does not keep up (the buffer would
 * overflow, or queued frames were not read for a whole heartbeat) is
 * dropped: everything queued is replaced by one `event: reset` and the
 * stream ends. A comment heartbeat goes out every `heartbeatMs`, and with
 * it `check()` runs: a reason it returns ends the stream with `event: end`
 * (`{"reason"}`). `onClose` runs once, whichever way the stream ends
 * (client gone, dropped, ended), after its heartbeat is stopped; the last
 * frames of a dropped or ended stream get `flushMs` to go out, then the
 * stream is cut.
 *
 * @example
 * ```ts
 * const sse = new SseStream({ signal: req.signal, onClose: leave });
 * sse.send(frame("vm", vm, "42"));
 * return new Response(sse.body, { headers: SSE_HEADERS });
 * ```
 */

/** Headers of an event stream answer. */
export const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-store",
  "X-Accel-Buffering": "no",
} as const;

/** One event as the stream format writes it (`data` as one JSON line). */
export function frame(event: string, data: unknown, id?: string): string {
  return `${id === undefined ? "" : `id: ${id}\n`}event: ${event}\ndata: ${
    JSON.stringify(data)
  }\n\n`;
}

export interface SseOptions {
  /** Aborts when the client goes away. */
  signal: AbortSignal;
  /** Runs once when the stream ends, for any reason. */
  onClose: (why: string) => void;
  /** Bytes queued for the client at most; 1 MiB by default. */
  maxBufferBytes?: number;
  /** Between two heartbeats; 15 s by default. */
  heartbeatMs?: number;
  /** Run at every heartbeat: a reason to end the stream, or null. */
  check?: () => Promise<string | null>;
  /** How long a dropped or ended stream may take to flush; 5 s. */
  flushMs?: number;
}

const encoder = new TextEncoder();

/** A bounded server-sent event stream (see the module comment). */
export class SseStream {
  readonly body: ReadableStream<Uint8Array>;
  readonly #max: number;
  readonly #beatMs: number;
  readonly #flushMs: number;
  readonly #onClose: (why: string) => void;
  readonly #signal: AbortSignal;
  #queue: string[] = [];
  #bytes = 0;
  /** When the oldest queued frame was queued (monotonic ms). */
  #queuedAt = 0;
  #closed = false;
  #wake: (() => void) | null = null;
  #roomWaiters: (() => void)[] = [];
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly #beat: ReturnType<typeof setInterval>;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #gone = () => this.discard();

  constructor(opts: SseOptions) {
    this.#max = opts.maxBufferBytes ?? 1024 * 1024;
    this.#beatMs = opts.heartbeatMs ?? 15_000;
    this.#flushMs = opts.flushMs ?? 5000;
    this.#onClose = opts.onClose;
    this.#signal = opts.signal;
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => this.#pull(controller),
      cancel: () => this.discard(),
    }, { highWaterMark: 0 });
    this.#beat = setInterval(() => this.#heartbeat(opts.check), this.#beatMs);
    this.#signal.addEventListener("abort", this.#gone, { once: true });
    if (this.#signal.aborted) this.discard();
  }

  /** Whether the stream still takes frames. */
  get open(): boolean {
    return !this.#closed;
  }

  /** Queues a frame; drops the client when it would overflow the buffer. */
  send(text: string): boolean {
    if (this.#closed) return false;
    if (this.#bytes + text.length > this.#max) {
      this.drop("buffer full");
      return false;
    }
    this.#push(text);
    return true;
  }

  /**
   * Queues a frame once the buffer is at most half full (a snapshot goes
   * out as fast as the client reads it); false once the stream ended.
   */
  async sendPaced(text: string): Promise<boolean> {
    while (!this.#closed && this.#bytes > this.#max / 2) {
      await new Promise<void>((r) => this.#roomWaiters.push(r));
    }
    return this.send(text);
  }

  /** Drops the client: the queue becomes one `event: reset`, then the end. */
  drop(why: string): void {
    if (this.#closed) return;
    this.#queue = [];
    this.#bytes = 0;
    this.#push(frame("reset", { reason: why }));
    this.#finish(why);
  }

  /** Ends the stream after `event` (sent even over a full buffer). */
  end(event: string, data: unknown): void {
    if (this.#closed) return;
    this.#push(frame(event, data));
    this.#finish(event);
  }

  #push(text: string): void {
    if (this.#queue.length === 0) this.#queuedAt = performance.now();
    this.#queue.push(text);
    this.#bytes += text.length;
    this.#wake?.();
  }

  async #pull(c: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (this.#queue.length === 0 && !this.#closed) {
      await new Promise<void>((r) => this.#wake = r);
      this.#wake = null;
    }
    if (this.#queue.length === 0) {
      clearTimeout(this.#flushTimer);
      c.close();
      return;
    }
    const text = this.#queue.join("");
    this.#queue = [];
    this.#bytes = 0;
    for (const r of this.#roomWaiters.splice(0)) r();
    c.enqueue(encoder.encode(text));
  }

  async #heartbeat(check?: () => Promise<string | null>): Promise<void> {
    if (this.#closed) return;
    // Frames waited a whole heartbeat unread: the client does not read.
    if (
      this.#queue.length > 0 &&
      performance.now() - this.#queuedAt >= this.#beatMs
    ) {
      this.drop("client too slow");
      return;
    }
    this.send(": ping\n\n");
    let why: string | null = null;
    try {
      why = (await check?.()) ?? null;
    } catch (err) {
      why = `cannot check the session: ${(err as Error).message}`;
    }
    if (why !== null) this.end("end", { reason: why });
  }

  /** Ends the stream at once, dropping what is queued (client gone). */
  discard(why = "client gone"): void {
    clearTimeout(this.#flushTimer);
    this.#queue = [];
    this.#bytes = 0;
    this.#finish(why);
  }

  #finish(why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#beat);
    this.#signal.removeEventListener("abort", this.#gone);
    this.#wake?.();
    for (const r of this.#roomWaiters.splice(0)) r();
    if (this.#queue.length > 0) {
      // The last frames are given `flushMs` to go out, then the stream is cut.
      this.#flushTimer = setTimeout(() => {
        this.#queue = [];
        try {
          this.#controller.error(new Error(`event stream ${why}`));
        } catch { /* already closed */ }
      }, this.#flushMs);
    }
    this.#onClose(why);
  }
}
