/**
 * etcd request latency of one process: `ucloud_etcd_request_duration_seconds`
 * by operation (range, put, delete, txn, compact, lease_grant, lease_revoke,
 * lease_ttl, status, ...) and `ucloud_etcd_request_failures_total`, timed
 * around every unary call of a store's etcd client, so the store's own
 * methods and the few callers that use `store.client` directly are all
 * counted. The observer of each operation is made once (no label lookup
 * per call). Streams (watches, lease keep-alives) are not requests and are
 * not timed.
 *
 * @example
 * ```ts
 * const store = Store.connect(config.etcd);
 * for (const m of timeEtcdRequests(store)) registry.registerMetric(m);
 * ```
 */
import { Counter, Histogram, type Metric } from "prom-client";
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

type Unary = (...args: unknown[]) => Promise<unknown>;

const timed = new WeakMap<Store, Metric[]>();

/**
 * Times every unary etcd request `store` sends from now on; returns the
 * metrics to register (in no registry yet). A store is instrumented once:
 * a second call returns the same metrics.
 */
export function timeEtcdRequests(store: Store): Metric[] {
  const known = timed.get(store);
  if (known) return known;
  const duration = new Histogram({
    name: ETCD_DURATION_METRIC,
    help: "etcd request duration by operation, as this process saw it",
    labelNames: ["operation"] as const,
    buckets: BUCKETS,
    registers: [],
  });
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
      const observed = duration.labels({ operation });
      const failed = failures.labels({ operation });
      client[method] = async (...args: unknown[]) => {
        const start = performance.now();
        try {
          return await call(...args);
        } catch (err) {
          failed.inc();
          throw err;
        } finally {
          observed.observe((performance.now() - start) / 1000);
        }
      };
    }
  }
  timed.set(store, [duration, failures]);
  return [duration, failures];
}
