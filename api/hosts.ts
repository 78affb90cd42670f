/**
 * `/v1/hosts`: the registered hosts with their liveness (`alive/`, bound to
 * the host's lease), what they offer to placement (allocation ratios and
 * memory reserve), their reserved usage and VMs (`alloc/<host>`) and the
 * time of their last heartbeat; draining and enabling a host (admins only).
 * The three listings are read at one etcd revision, so they agree.
 *
 * The views are api/host_views.ts, draining and enabling
 * api/host_actions.ts (the web's hosts page calls the same). Shutting a
 * host down drains it and then its worker exits in order
 * (workers/shutdown.ts); enabling the host drops a shutdown not yet done.
 *
 * @example
 * ```ts
 * app.route("/v1/hosts", hosts({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { requestShutdown } from "../workers/shutdown.ts";
import {
  type Deps,
  HostParams,
  MaybeTaskDoc,
  requireAdmin,
  router,
  TaskDoc,
} from "./env.ts";
import { errorResponses } from "./errors.ts";
import { drainHost, enableHost } from "./host_actions.ts";
import { HostView, listHostViews, readHostView } from "./host_views.ts";

/** What drain, shutdown and enable answer: the host and the task, if any. */
const HostChange = z.object({ host: HostView, task: MaybeTaskDoc })
  .openapi("HostChange");

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const listHosts = createRoute({
  method: "get",
  path: "/",
  summary: "List hosts with liveness, reserved usage and VMs",
  responses: {
    200: json(
      z.object({ items: z.array(HostView) }),
      "Every registered host, by name",
    ),
    ...errorResponses(403, 503),
  },
});

const drainRoute = createRoute({
  method: "post",
  path: "/{name}/drain",
  summary: "Drain a host: no new VMs, every VM moved elsewhere (admin)",
  request: { params: HostParams },
  responses: {
    202: json(
      z.object({ host: HostView, task: TaskDoc }),
      "Host draining; `task` (host.drain) moves its VMs",
    ),
    200: json(
      z.object({ host: HostView, task: z.null() }),
      "Already draining",
    ),
    ...errorResponses(400, 403, 404, 409, 503),
  },
});

const shutdownHost = createRoute({
  method: "post",
  path: "/{name}/shutdown",
  summary: "Shut a host down in order: drain it, then its worker exits (admin)",
  request: { params: HostParams },
  responses: {
    202: json(
      z.object({ host: HostView, task: TaskDoc }),
      "Host draining; `task` (host.drain) moves its VMs, then the worker exits",
    ),
    200: json(
      z.object({ host: HostView, task: z.null() }),
      "Already shutting down",
    ),
    ...errorResponses(400, 403, 404, 409, 503),
  },
});

const enableRoute = createRoute({
  method: "post",
  path: "/{name}/enable",
  summary: "Enable a drained host for new VMs again (admin)",
  request: { params: HostParams },
  responses: {
    200: json(
      HostChange,
      "Host active; `task` records the change (null: it was active)",
    ),
    ...errorResponses(400, 403, 404, 409, 503),
  },
});

/** Builds the `/v1/hosts` sub-app. */
export function hosts(deps: Deps) {
  const { store, config } = deps;
  const maxAttempts = config.tasks.maxAttempts;
  return router()
    .openapi(listHosts, async (c) => {
      requireAdmin(c.get("principal"), "list hosts");
      return c.json({ items: await listHostViews(store) }, 200);
    })
    .openapi(drainRoute, async (c) => {
      const { name } = c.req.valid("param");
      const r = await drainHost(deps, c.get("principal"), name);
      return r.task
        ? c.json({ host: r.host, task: r.task }, 202)
        : c.json({ host: r.host, task: null }, 200);
    })
    .openapi(shutdownHost, async (c) => {
      const { name } = c.req.valid("param");
      const who = c.get("principal");
      requireAdmin(who, `shut down host ${name}`);
      const task = await requestShutdown(store, {
        host: name,
        by: who.name,
        owner: who.name,
        maxAttempts,
      });
      const host = await readHostView(store, name);
      return task ? c.json({ host, task }, 202) : c.json({ host, task }, 200);
    })
    .openapi(enableRoute, async (c) => {
      const { name } = c.req.valid("param");
      return c.json(await enableHost(deps, c.get("principal"), name), 200);
    });
}
