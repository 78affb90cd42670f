/**
 * `GET /v1/monitoring/targets`: Prometheus' HTTP service discovery
 * (`http_sd_configs`): every API replica and every worker that announces a
 * `/metrics`, as http_sd JSON (api/monitoring_targets.ts). Served to whoever
 * may scrape `/metrics` (config `api.metrics`: an allowed address, or the
 * metrics bearer token, which Prometheus sends with `authorization:
 * { credentials_file: ... }`), and otherwise to an administrator's login.
 * Mounted before the `/v1/*` auth middleware, whose place it takes here.
 *
 * @example
 * ```ts
 * app.route("/v1/monitoring", monitoring({ store, auth, targets }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { UnavailableError } from "../core/errors.ts";
import type { Store } from "../core/store.ts";
import { type AppEnv, requireAdmin, router } from "./env.ts";
import { errorResponses } from "./errors.ts";
import { type MetricsAccessOptions, scrapeCheck } from "./metrics_access.ts";
import {
  listTargetGroups,
  type MonitoringTargets,
} from "./monitoring_targets.ts";

/** How long an answer waits for the first listing of the watches. */
const READY_WAIT_MS = 2000;

const TargetGroup = z.object({
  targets: z.array(z.string()).describe("`host:port` of one /metrics"),
  labels: z.record(z.string(), z.string()).describe(
    "`__metrics_path__`, `__scheme__`, `job` (ucloud-api or ucloud-worker), `host`, and `replica` for API replicas",
  ),
}).openapi("TargetGroup");

const listTargets = createRoute({
  method: "get",
  path: "/targets",
  summary: "Prometheus http_sd targets: API replicas and workers",
  description: "For scrapers allowed by api.metrics (address or bearer " +
    "token) and administrators.",
  responses: {
    200: {
      description: "One group per /metrics endpoint",
      content: { "application/json": { schema: z.array(TargetGroup) } },
    },
    ...errorResponses(401, 403, 503),
  },
});

export interface MonitoringOptions {
  store: Store;
  /** The `/v1/*` authentication, for callers that are not scrapers. */
  auth: MiddlewareHandler<AppEnv>;
  /** Who may scrape (`api.metrics` and `api.trustedProxies`). */
  access: MetricsAccessOptions;
  /** The watched targets; without, each answer reads etcd. */
  targets?: MonitoringTargets;
}

/** The `/v1/monitoring` sub-app. */
export function monitoring(
  { store, auth, access, targets }: MonitoringOptions,
) {
  const check = scrapeCheck(access);
  const r = router();
  r.use("/targets", async (c, next) => {
    if ((await check(c)).ok) return await next();
    return await auth(c, async () => {
      const p = c.get("principal");
      // An admin acting for a user has the user's rights.
      requireAdmin(
        c.req.header("x-act-as") === undefined ? p : { ...p, admin: false },
        "read monitoring targets",
      );
      await next();
    });
  });
  return r.openapi(listTargets, async (c) => {
    if (!targets) return c.json(await listTargetGroups(store), 200);
    if (!(await targets.waitReady(READY_WAIT_MS))) {
      throw new UnavailableError("Monitoring targets are not listed yet");
    }
    return c.json(targets.groups(), 200);
  });
}
