/**
 * Prometheus metrics: HTTP request counts and durations by matched route
 * pattern, queue depth and task counts read from etcd at scrape time, and
 * the process's count of unreadable documents (core/unreadable.ts).
 * Metrics live in the registry handed in (one per app), never in
 * prom-client's global default registry.
 *
 * @example
 * ```ts
 * const registry = new Registry();
 * app.use("*", httpMetrics(registry));
 * app.route("/metrics", metrics({ store, registry }));
 * ```
 */
import { Hono, type MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { UNREADABLE_METRIC, unreadableDocuments } from "../core/unreadable.ts";

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

/** The `/metrics` sub-app; registers the gauges read from etcd. */
export function metrics(
  { store, registry }: { store: Store; registry: Registry },
): Hono {
  new Gauge({
    name: "ucloud_task_queue_depth",
    help: "Runnable tasks in the queue index, by target",
    labelNames: ["target"] as const,
    registers: [registry],
    async collect() {
      const depth = new Map<string, number>();
      for (const key of await store.keys(keys.queues)) {
        const target = key.split("/")[1];
        depth.set(target, (depth.get(target) ?? 0) + 1);
      }
      this.reset();
      for (const [target, n] of depth) this.set({ target }, n);
    },
  });
  new Gauge({
    name: "ucloud_tasks",
    help: "Task documents by kind and state",
    labelNames: ["kind", "state"] as const,
    registers: [registry],
    async collect() {
      const { items } = await store.list(keys.tasks, Task);
      this.reset();
      for (const { value: t } of items) {
        this.inc({ kind: t.kind, state: t.state });
      }
    },
  });
  if (!registry.getSingleMetric(UNREADABLE_METRIC)) {
    registry.registerMetric(unreadableDocuments);
  }
  return new Hono().get("/", async (c) => {
    const text = await registry.metrics();
    return c.text(text, 200, { "Content-Type": registry.contentType });
  });
}
