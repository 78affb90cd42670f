/**
 * Prometheus metrics: HTTP request counts and durations by matched route
 * pattern, queue depth, oldest runnable task and task counts kept from
 * watches, with what tasks did (api/task_counts.ts, api/task_flow.ts: a
 * scrape sends no etcd request), metrics of other parts handed in (`also`:
 * auth failures, placements, etcd request latency), and the process's
 * count of unreadable documents (core/unreadable.ts).
 * Metrics live in the registry handed in (one per app), never in
 * prom-client's global default registry.
 *
 * @example
 * ```ts
 * const registry = new Registry();
 * app.use("*", httpMetrics(registry));
 * app.route("/metrics", metrics({ registry, counts: TaskCounts.start(store) }));
 * ```
 */
import { Hono, type MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import {
  Counter,
  Gauge,
  Histogram,
  type Metric,
  type Registry,
} from "prom-client";
import { unreadableDocuments } from "../core/unreadable.ts";
import type { TaskCounts } from "./task_counts.ts";

/** How long a scrape waits for the first listing of the counts. */
const READY_WAIT_MS = 2000;

/** The label of requests no route matched, so raw paths never become labels. */
export const UNMATCHED = "unmatched";

/** Middleware counting and timing every request by its route pattern. */
export function httpMetrics(registry: Registry): MiddlewareHandler {
  const requests = new Counter({
    name: "ucloud_http_requests_total",
    help: "HTTP requests by method, matched route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "ucloud_http_request_duration_seconds",
    help: "HTTP request duration by method and matched route pattern",
    labelNames: ["method", "route"] as const,
    registers: [registry],
  });
  return async (c, next) => {
    const start = performance.now();
    try {
      await next();
    } finally {
      const route = matchedRoutes(c).find((r) => r.method !== "ALL")?.path ??
        UNMATCHED;
      const method = c.req.method;
      requests.inc({ method, route, status: String(c.res.status) });
      duration.observe({ method, route }, (performance.now() - start) / 1000);
    }
  };
}

/**
 * The `/metrics` sub-app; registers the task gauges and counters when
 * `counts` is given (none without: the API never scans `task/` to answer a
 * scrape), and each metric of `also` not registered yet.
 */
export function metrics(
  { registry, counts, also = [] }: {
    registry: Registry;
    counts?: TaskCounts;
    also?: Metric[];
  },
): Hono {
  if (counts) taskGauges(registry, counts);
  for (
    const m of [unreadableDocuments, ...(counts?.flow.metrics ?? []), ...also]
  ) {
    if (!registry.getSingleMetric(nameOf(m))) registry.registerMetric(m);
  }
  return new Hono().get("/", async (c) => {
    const text = await registry.metrics();
    return c.text(text, 200, { "Content-Type": registry.contentType });
  });
}

/** A metric's name (prom-client keeps it in the untyped `name` field). */
function nameOf(m: Metric): string {
  return (m as unknown as { name: string }).name;
}

function taskGauges(registry: Registry, counts: TaskCounts): void {
  new Gauge({
    name: "ucloud_task_queue_oldest_runnable_age_seconds",
    help: "Seconds since the oldest due, unclaimed task of a target could " +
      "run (0: none waits), by target",
    labelNames: ["target"] as const,
    registers: [registry],
    async collect() {
      const ready = await counts.waitReady(READY_WAIT_MS);
      this.reset();
      if (!ready) return;
      for (const { target, seconds } of counts.oldestRunnable()) {
        this.set({ target }, seconds);
      }
    },
  });
  new Gauge({
    name: "ucloud_task_queue_depth",
    help: "Runnable tasks in the queue index, by target",
    labelNames: ["target"] as const,
    registers: [registry],
    async collect() {
      const ready = await counts.waitReady(READY_WAIT_MS);
      this.reset();
      if (!ready) return;
      for (const { target, n } of counts.queueDepth()) this.set({ target }, n);
    },
  });
  new Gauge({
    name: "ucloud_tasks",
    help: "Task documents by kind and state",
    labelNames: ["kind", "state"] as const,
    registers: [registry],
    async collect() {
      const ready = await counts.waitReady(READY_WAIT_MS);
      this.reset();
      if (!ready) return;
      for (const { kind, state, n } of counts.tasks()) {
        this.set({ kind, state }, n);
      }
    },
  });
}
