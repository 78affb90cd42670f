/**
 * The HTTP API as a Hono app built from its dependencies, so tests call
 * `app.request()` without a port. Resource sub-apps are mounted under
 * `/v1`; the auth middleware (the one slot for authentication) runs on
 * `/v1/*` and sets the `principal` every handler reads.
 *
 * @example
 * ```ts
 * const app = createApp({ store });
 * const res = await app.request("/v1/vms");
 * ```
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type Metric, Registry } from "prom-client";
import { type Config, ConfigSchema } from "../core/config.ts";
import { ConsoleConfig } from "../core/config_console.ts";
import { keys } from "../core/keys.ts";
import { type Logger, logger } from "../core/log.ts";
import { MAX_USER_DATA_BYTES } from "../core/schemas.ts";
import { NAME_RE } from "../core/totp.ts";
import type { Store } from "../core/store.ts";
import type { BearerTokens } from "./tokens.ts";
import { type AppEnv, type Principal, router } from "./env.ts";
import { consoleTickets } from "./console.ts";
import { consolePages } from "./console_page.ts";
import { consoleSocket } from "./console_ws.ts";
import { errorJson, notFound, onError, validationHook } from "./errors.ts";
import { EventHub } from "./event_hub.ts";
import { events, type EventsOptions } from "./events.ts";
import { hosts } from "./hosts.ts";
import { sshKeys } from "./keys.ts";
import { UPLOAD_PATH_RE } from "./image_upload.ts";
import { images } from "./images.ts";
import { maintenance } from "./maintenance.ts";
import { networks } from "./networks.ts";
import type { AuthFailures } from "./auth_failures.ts";
import { httpMetrics, metrics } from "./metrics.ts";
import type { TaskCounts } from "./task_counts.ts";
import { quotas } from "./quotas.ts";
import { EtcdRevocationList } from "./revocations.ts";
import { metricsAccess } from "./metrics_access.ts";
import { monitoring } from "./monitoring.ts";
import type { MonitoringTargets } from "./monitoring_targets.ts";
import type { WebAuth } from "./session_login.ts";
import { whoamiRoute } from "./session_routes.ts";
import { tasks } from "./tasks.ts";
import { vms } from "./vms.ts";
import { webApp } from "./web/mod.ts";

export type { AppEnv, Principal };

/** The largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * The largest body of `POST /v1/vms`: room for its user data (64 KiB) even
 * when JSON escapes every byte as `\u00XX`.
 */
export const VM_CREATE_BODY_BYTES = MAX_BODY_BYTES + 6 * MAX_USER_DATA_BYTES;

/** The default principal: a local administrator (no authentication yet). */
export const LOCAL_ADMIN: Principal = { name: "local", admin: true };

export interface AppOptions {
  store: Store;
  /** Task, scheduler and images settings; defaults from core/config.ts. */
  config?:
    & Pick<Config, "tasks">
    & Partial<
      Pick<
        Config,
        "scheduler" | "network" | "images" | "quota" | "api" | "console"
      >
    >;
  /** Runs on `/v1/*` and must `c.set("principal", ...)`. */
  auth?: MiddlewareHandler<AppEnv>;
  /**
   * Authentication built by `createIdentity` (api/identity.ts): its `auth`
   * fills the `auth` slot and its routes are mounted at `/v1/auth`.
   */
  identity?: {
    auth: MiddlewareHandler<AppEnv>;
    routes: OpenAPIHono<AppEnv>;
    /** Refused authentications, reported by `/metrics`. */
    failures?: AuthFailures;
    /** Checked again by long requests (`/v1/events`, the console). */
    bearer?: BearerTokens;
    sessions?: BearerTokens;
    /** With it, the web pages are served under `/web/` (api/web/). */
    web?: WebAuth;
  };
  /**
   * The shared watches of `/v1/events` (a new hub by default; close it
   * before the server shuts down) and its heartbeat and buffer settings.
   */
  events?:
    & { hub?: EventHub }
    & Pick<
      EventsOptions,
      "heartbeatMs" | "maxBufferBytes" | "maxStreamsPerUser" | "maxStreams"
    >;
  /** Where metrics are registered; a new registry per app by default. */
  registry?: Registry;
  /** The watched task counts `/metrics` reports; no task gauges without. */
  taskCounts?: TaskCounts;
  /**
   * More metrics `/metrics` reports, registered nowhere yet: e.g. the
   * placements (api/vm_placements.ts) and etcd request times
   * (core/etcd_metrics.ts).
   */
  metrics?: Metric[];
  /** The watched discovery targets; without, each request reads etcd. */
  monitoringTargets?: MonitoringTargets;
  /** The API's log (component `api`). */
  log?: Logger;
}

const localAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.set("principal", LOCAL_ADMIN);
  await next();
};

/** Builds the API app. */
export function createApp({
  store,
  config = { tasks: ConfigSchema.shape.tasks.parse(undefined) },
  auth,
  identity,
  registry = new Registry(),
  taskCounts,
  metrics: more = [],
  monitoringTargets,
  log = logger({ component: "api" }),
  events: eventOptions = {},
}: AppOptions): OpenAPIHono<AppEnv> {
  auth ??= identity?.auth ?? localAdmin;
  const deps = { store, config };
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.onError(onError);
  app.notFound(notFound);
  app.use("*", httpMetrics(registry));

  app.get("/healthz", async (c) => {
    try {
      await store.count(keys.hosts);
      return c.json({ ok: true }, 200);
    } catch (err) {
      return c.json({ ok: false, error: (err as Error).message }, 503);
    }
  });
  // Who may scrape: config api.metrics (default loopback only).
  const access = {
    ...config.api?.metrics,
    trustedProxies: config.api?.trustedProxies,
    log,
  };
  app.use("/metrics/*", metricsAccess(access));
  app.route(
    "/metrics",
    metrics({
      registry,
      counts: taskCounts,
      also: [...(identity?.failures ? [identity.failures] : []), ...more],
    }),
  );

  // Registered before the auth middleware: the API description is public.
  // 3.1: a nullable reference is `anyOf: [$ref, null]` (3.0 cannot say it).
  app.doc31("/v1/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "ucloud",
      version: "1",
      description: "The ucloud HTTP API. Errors are `{ error: { status, " +
        "code, message, field? } }`.",
    },
  });
  const limit = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: (c) =>
        errorJson(c, 413, `Request body is larger than ${maxSize} bytes`),
    });
  const jsonLimit = limit(MAX_BODY_BYTES);
  // Before the `/v1/*` auth: scrapers get in without a login.
  app.route(
    "/v1/monitoring",
    monitoring({ store, auth, access, targets: monitoringTargets }),
  );
  const vmCreateLimit = limit(VM_CREATE_BODY_BYTES);
  app.use(
    "/v1/*",
    // Image uploads stream to disk under their own limit (image_upload.ts).
    (c, next) =>
      c.req.method === "PUT" && UPLOAD_PATH_RE.test(c.req.path)
        ? next()
        : c.req.method === "POST" && c.req.path === "/v1/vms"
        ? vmCreateLimit(c, next)
        : jsonLimit(c, next),
    auth,
    async (c, next) => {
      const p = c.get("principal");
      if (!p) throw new Error("The auth middleware did not set a principal");
      // An admin acts for a user: everything then runs with the user's
      // rights and is owned by the user.
      const actAs = c.req.header("x-act-as");
      if (actAs !== undefined) {
        if (!p.admin) {
          return errorJson(
            c,
            403,
            `Cannot act as ${actAs}: ${p.name} is not an admin`,
            "X-Act-As",
          );
        }
        if (!NAME_RE.test(actAs)) {
          return errorJson(c, 400, "X-Act-As must be a user name", "X-Act-As");
        }
        c.set("principal", { name: actAs, admin: false, actor: p.name });
        try {
          await next();
        } finally {
          // Both people, for the audit: whose rights, and who sent it.
          log.info("request for another user", {
            user: actAs,
            actor: p.name,
            method: c.req.method,
            path: c.req.path,
            status: c.res.status,
          });
        }
        return;
      }
      await next();
    },
  );
  app.route("/v1/vms", vms(deps));
  app.route("/v1/networks", networks(deps));
  app.route("/v1/keys", sshKeys(deps));
  app.route("/v1/images", images(deps));
  app.route("/v1/hosts", hosts(deps));
  app.route("/v1/tasks", tasks(deps));
  app.route("/v1/maintenance", maintenance(deps));
  app.route("/v1/users", quotas(deps));
  const bearer = identity?.bearer;
  app.route(
    "/v1/events",
    events({
      ...config.api?.events,
      ...eventOptions,
      store,
      log,
      hub: eventOptions.hub ?? new EventHub(store, { log }),
      tokens: bearer && { bearer, sessions: identity?.sessions },
    }),
  );
  // The console: tickets (authenticated above), its page and websocket
  // (the ticket is their credential; api/console_ws.ts).
  const consoleConfig = config.console ?? ConsoleConfig.parse({});
  app.route("/v1/vms", consoleTickets({ store, console: consoleConfig }));
  const revocations = new EtcdRevocationList(store);
  app.get(
    "/web/console/:id/ws",
    consoleSocket({
      store,
      console: consoleConfig,
      sessions: identity?.sessions,
      isRevoked: (id) => revocations.isRevoked(id),
      log,
    }),
  );
  app.route("/web", consolePages());
  if (identity?.web) {
    app.route("/web", webApp({ deps, auth: identity.web, log }));
  }
  if (identity) app.route("/v1/auth", identity.routes);
  // Without identity, `ucloud whoami` still says who the API takes you for.
  else app.route("/v1/auth", whoamiRoute(router()));
  return app;
}
