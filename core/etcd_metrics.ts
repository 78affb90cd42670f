/**
 * etcd request latency of one process: `ucloud_etcd_request_duration_seconds`
 * by operation (range, put, delete, txn, compact, lease_grant, lease_revoke,
 * lease_ttl, status, ...) and `ucloud_etcd_request_failures_total`, timed
 * around every unary call of a store's etcd client, so the store's own
 * methods and the few callers that use `store.client` directly are all
 * counted. A request only adds to a few numbers (no label lookup, no
 * allocation: the histogram is written out at scrape time). Streams (watches, lease keep-alives) are not requests and are
 * not timed.
 *
 * @example
 * ```ts
 * const store = Store.connect(config.etcd);
 * for (const m of timeEtcdRequests(store)) registry.registerMetric(m);
 * ```
 */
import { Counter, type Metric } from "prom-client";
import type { Store } from "./store.ts";

/** The histogram's name. */
export const ETCD_DURATION_METRIC = "ucloud_etcd_request_duration_seconds";

/** Buckets for requests to a local etcd: 0.5 ms to 5 s. */
const BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

/** The timed methods of each etcd3 service client, by operation label. */
const TIMED = {
  kv: {
    range: "range",
    put: "put",
    deleteRange: "delete",
    txn: "txn",
    compact: "compact",
  },
  leaseClient: {
    leaseGrant: "lease_grant",
    leaseRevoke: "lease_revoke",
    leaseTimeToLive: "lease_ttl",
    leaseLeases: "lease_list",
  },
  maintenance: {
    status: "status",
    defragment: "defragment",
    alarm: "alarm",
  },
  cluster: { memberList: "member_list" },
} as const;

/** A unary call of etcd3's service clients: `(request, callOptions)`. */
type Unary = (req: unknown, options?: unknown) => Promise<unknown>;

/**
 * A histogram by operation kept in plain arrays: a request adds to numbers
 * (no label lookup, no allocation); the text is made at scrape time, in
 * the shape prom-client's registry writes (`get()`).
 */
class Timings {
  readonly name = ETCD_DURATION_METRIC;
  readonly help = "etcd request duration by operation, as this process saw it";
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #ops: string[] = [];
  #counts: number[] = [];
  #sums: number[] = [];
  /** Per operation, requests per bucket (not cumulative; +Inf last). */
  #buckets: number[][] = [];

  /** The index `observe` takes for `operation`. */
  add(operation: string): number {
    this.#ops.push(operation);
    this.#counts.push(0);
    this.#sums.push(0);
    this.#buckets.push(new Array(BUCKETS.length + 1).fill(0));
    return this.#ops.length - 1;
  }

  observe(op: number, seconds: number): void {
    let b = 0;
    while (b < BUCKETS.length && seconds > BUCKETS[b]) b++;
    this.#buckets[op][b]++;
    this.#counts[op]++;
    this.#sums[op] += seconds;
  }

  get() {
    const values: {
      labels: Record<string, string | number>;
      value: number;
      metricName: string;
    }[] = [];
    this.#ops.forEach((operation, op) => {
      if (this.#counts[op] === 0) return;
      let total = 0;
      this.#buckets[op].forEach((n, b) => {
        total += n;
        values.push({
          labels: { operation, le: b < BUCKETS.length ? BUCKETS[b] : "+Inf" },
          value: total,
          metricName: `${this.name}_bucket`,
        });
      });
      values.push(
        {
          labels: { operation },
          value: this.#sums[op],
          metricName: `${this.name}_sum`,
        },
        {
          labels: { operation },
          value: this.#counts[op],
          metricName: `${this.name}_count`,
        },
      );
    });
    return { name: this.name, help: this.help, type: this.type, values };
  }

  reset(): void {
    this.#counts = this.#counts.map(() => 0);
    this.#sums = this.#sums.map(() => 0);
    this.#buckets = this.#buckets.map((b) => b.map(() => 0));
  }
}

const timed = new WeakMap<Store, Metric[]>();

/**
 * Times every unary etcd request `store` sends from now on; returns the
 * metrics to register (in no registry yet). A store is instrumented once:
 * a second call returns the same metrics.
 */
export function timeEtcdRequests(store: Store): Metric[] {
  const known = timed.get(store);
  if (known) return known;
  const duration = new Timings();
  const failures = new Counter({
    name: "ucloud_etcd_request_failures_total",
    help: "etcd requests that failed (error or timeout), by operation",
    labelNames: ["operation"] as const,
    registers: [],
  });
  for (const [service, methods] of Object.entries(TIMED)) {
    const client = store
      .client[service as keyof typeof TIMED] as unknown as Record<
        string,
        Unary
      >;
    for (const [method, operation] of Object.entries(methods)) {
      const call = client[method].bind(client);
      const op = duration.add(operation);
      client[method] = async (req: unknown, options?: unknown) => {
        const start = performance.now();
        try {
          return await call(req, options);
        } catch (err) {
          failures.inc({ operation });
          throw err;
        } finally {
          duration.observe(op, (performance.now() - start) / 1000);
        }
      };
    }
  }
  // The registry reads what a Histogram's get() returns; nothing else.
  const metrics = [duration as unknown as Metric, failures];
  timed.set(store, metrics);
  return metrics;
}
