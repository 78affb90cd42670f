/**
 * Small helpers of the bench phases (`scripts/bench/`): latency statistics,
 * a bounded concurrency pool, call counting, a cleanup stack, the stores and
 * HTTP servers of a phase, progress lines and the plain-text result table.
 *
 * @example
 * ```ts
 * const ms = await timedPool(100, 8, async (i) => { await work(i); });
 * console.log(summarize(ms.latencies));
 * ```
 */
import type { createApp } from "../../api/app.ts";
import { Store } from "../../core/store.ts";

/** Operations in flight in the concurrent runs of the etcd phases. */
export const IN_FLIGHT = 64;

/** A progress line on stderr (stdout holds only the table and the JSON). */
export function progress(msg: string): void {
  console.error(`bench: ${msg}`);
}

/** A store on `endpoint` under its own prefix, so phases never collide. */
export function storeFor(endpoint: string, prefix: string): Store {
  return Store.connect({ endpoints: [endpoint], prefix, timeoutMs: 5000 });
}

/** Latency summary in milliseconds (nearest-rank percentiles). */
export interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** The nearest-rank percentile `p` (0-100) of `values`; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Rounds to `digits` decimals (JSON-friendly figures). */
export function round(x: number, digits = 1): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** min, percentiles, max and mean of `values` (ms), rounded. */
export function summarize(values: number[]): Summary {
  const n = values.length;
  return {
    n,
    min: round(Math.min(...values)),
    p50: round(percentile(values, 50)),
    p95: round(percentile(values, 95)),
    p99: round(percentile(values, 99)),
    max: round(Math.max(...values)),
    mean: round(values.reduce((s, v) => s + v, 0) / Math.max(1, n)),
  };
}

export interface PoolResult {
  /** Wall time of the whole run, ms. */
  elapsedMs: number;
  /** Per-item latency, ms, in item order. */
  latencies: number[];
  /** Items whose function returned false. */
  failed: number;
}

/**
 * Runs `f(0..n-1)` with at most `concurrency` calls in flight and times
 * each call and the whole run. `f` returning false counts as a failure;
 * a thrown error aborts the run (after the calls in flight settle).
 */
export async function timedPool(
  n: number,
  concurrency: number,
  f: (i: number) => Promise<boolean | void>,
): Promise<PoolResult> {
  const latencies = new Array<number>(n).fill(NaN);
  let next = 0;
  let failed = 0;
  let error: unknown;
  const lane = async () => {
    while (error === undefined) {
      const i = next++;
      if (i >= n) return;
      const t = performance.now();
      try {
        if ((await f(i)) === false) failed++;
      } catch (err) {
        error ??= err;
        return;
      }
      latencies[i] = performance.now() - t;
    }
  };
  const start = performance.now();
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, lane),
  );
  const elapsedMs = performance.now() - start;
  if (error !== undefined) throw error;
  return { elapsedMs, latencies, failed };
}

export interface CallCounter {
  /** Calls made (failed ones included). */
  calls: number;
  /** Sums of what `measure` returned for each call that resolved. */
  sum: Record<string, number>;
  /** Puts the original method back. */
  restore(): void;
}

/**
 * Counts the calls of `obj[method]` (an async method, e.g. the etcd
 * client's `kv.txn`) until `restore()`, summing what `measure` returns for
 * each call's first argument and result.
 */
export function countCalls(
  obj: object,
  method: string,
  // deno-lint-ignore no-explicit-any
  measure?: (arg: any, res: any) => Record<string, number>,
): CallCounter {
  const target = obj as Record<string, unknown>;
  const own = Object.prototype.hasOwnProperty.call(obj, method);
  const orig = target[method] as (...args: unknown[]) => Promise<unknown>;
  const counter: CallCounter = {
    calls: 0,
    sum: {},
    restore: () => {
      if (own) target[method] = orig;
      else delete target[method];
    },
  };
  target[method] = async function (this: unknown, ...args: unknown[]) {
    counter.calls++;
    const res = await orig.apply(this, args);
    for (const [k, v] of Object.entries(measure?.(args[0], res) ?? {})) {
      counter.sum[k] = (counter.sum[k] ?? 0) + v;
    }
    return res;
  };
  return counter;
}

/** Operations per second of `n` items done in `elapsedMs`. */
export function rate(n: number, elapsedMs: number): number {
  return round(n / (elapsedMs / 1000), 0);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Cleanup actions run last-in first-out, each at most once, errors logged
 * and not thrown, so one failed step does not leave the others behind.
 */
export class Cleanup {
  readonly #steps: { what: string; f: () => Promise<void> | void }[] = [];
  #running?: Promise<void>;

  add(what: string, f: () => Promise<void> | void): void {
    this.#steps.push({ what, f });
  }

  /**
   * Runs the steps added so far; a call while a run is under way waits for
   * it. Steps added later run on the next call.
   */
  run(timeoutMs = 30_000): Promise<void> {
    this.#running ??= (async () => {
      while (this.#steps.length) {
        const { what, f } = this.#steps.pop()!;
        let timer: ReturnType<typeof setTimeout> | undefined;
        try {
          await Promise.race([
            Promise.resolve().then(f),
            new Promise((_, reject) => {
              timer = setTimeout(
                () => reject(new Error(`timed out after ${timeoutMs} ms`)),
                timeoutMs,
              );
            }),
          ]);
        } catch (err) {
          console.error(`bench: cleanup "${what}" failed: ${err}`);
        } finally {
          clearTimeout(timer);
        }
      }
    })().finally(() => this.#running = undefined);
    return this.#running;
  }
}

/** Serves `app` on a random loopback port; the server stops on cleanup. */
export function serve(
  app: ReturnType<typeof createApp>,
  cleanup: Cleanup,
): { base: string; stop: () => Promise<void> } {
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: () => {},
  }, app.fetch);
  let stopped: Promise<void> | undefined;
  const stop = () => stopped ??= server.shutdown();
  cleanup.add("http server", stop);
  return { base: `http://127.0.0.1:${server.addr.port}`, stop };
}

export interface Row {
  name: string;
  value: number | string;
  unit: string;
  notes?: string;
}

/** Renders rows as an aligned plain-text table. */
export function table(rows: Row[]): string {
  const cells = rows.map((r) => [
    r.name,
    typeof r.value === "number"
      ? (Number.isFinite(r.value) ? String(r.value) : "n/a")
      : r.value,
    r.unit,
    r.notes ?? "",
  ]);
  const head = ["name", "value", "unit", "notes"];
  const width = head.map((h, i) =>
    Math.max(h.length, ...cells.map((c) => c[i].length))
  );
  const line = (c: string[]) =>
    c.map((x, i) =>
      i === 1 ? x.padStart(width[i]) : i === 3 ? x : x.padEnd(width[i])
    ).join("  ").trimEnd();
  return [
    line(head),
    line(width.map((w, i) => "-".repeat(i === 3 ? Math.min(w, 40) : w))),
    ...cells.map(line),
  ].join("\n");
}
