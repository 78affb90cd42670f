/**
 * `/v1/tasks`: list task documents, newest first, in pages filtered on the
 * server (resources/tasks/list.ts), and show one. Non-admins see only the
 * tasks they own. `GET /v1/tasks/{id}/drain` reports what a
 * `host.drain` did to each VM: how its stop went, where it runs now and
 * its downtime (tasks/drain_report.ts).
 *
 * @example
 * ```ts
 * app.route("/v1/tasks", tasks({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ConflictError, NotFoundError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import { ID_RE, Task, TaskState } from "../core/schemas.ts";
import { listTasks as listTaskPage } from "../resources/tasks/list.ts";
import { taskView } from "../resources/host_internals.ts";
import { drainReport } from "../tasks/drain_report.ts";
import { canSee, type Deps, IdParams, router, TaskDoc } from "./env.ts";
import { errorResponses } from "./errors.ts";
import { pageOf, PageQuery } from "./pages.ts";

export const TaskQuery = PageQuery.extend({
  state: TaskState.optional(),
  kind: z.string().min(1).max(100).optional(),
  vm: z.string().regex(ID_RE, "vm must be a VM id").optional(),
  target: z.string().min(1).max(100).optional(),
});

const listTasks = createRoute({
  method: "get",
  path: "/",
  summary: "List tasks, newest first, a page at a time",
  description: "At most `limit` tasks; follow `continue` until it is null " +
    "(a page may end early, with fewer items and a token).",
  request: { query: TaskQuery },
  responses: {
    200: {
      description: "Matching tasks visible to the caller",
      content: {
        "application/json": { schema: pageOf(TaskDoc, "TaskPage") },
      },
    },
    ...errorResponses(400, 503),
  },
});

const showTask = createRoute({
  method: "get",
  path: "/{id}",
  summary: "Show a task",
  request: { params: IdParams },
  responses: {
    200: {
      description: "The task",
      content: { "application/json": { schema: TaskDoc } },
    },
    ...errorResponses(400, 404, 503),
  },
});

const DrainedVm = z.object({
  vm: z.string(),
  move: z.string(),
  stop: z.enum(["shutdown", "forced", "gone"]).optional(),
  stopMs: z.number().optional(),
  to: z.string().optional(),
  downtimeMs: z.number().optional(),
  done: z.boolean(),
  problem: z.string().optional(),
}).openapi("DrainedVm");

const showDrain = createRoute({
  method: "get",
  path: "/{id}/drain",
  summary: "What a host.drain did to each VM: stop, new host, downtime",
  request: { params: IdParams },
  responses: {
    200: {
      description: "Every VM of the drain (and of its later batches)",
      content: {
        "application/json": {
          schema: z.object({
            host: z.string().optional(),
            done: z.boolean(),
            vms: z.array(DrainedVm),
          }).openapi("DrainReport"),
        },
      },
    },
    ...errorResponses(400, 404, 409, 503),
  },
});

/** Builds the `/v1/tasks` sub-app. */
export function tasks({ store }: Deps) {
  return router()
    .openapi(listTasks, async (c) => {
      const page = await listTaskPage(
        store,
        c.get("principal"),
        c.req.valid("query"),
      );
      const who = c.get("principal");
      return c.json(
        { ...page, items: page.items.map((t) => taskView(who, t)) },
        200,
      );
    })
    .openapi(showTask, async (c) => {
      const id = c.req.valid("param").id;
      const who = c.get("principal");
      const t = await store.get(keys.task(id), Task);
      if (!t || !canSee(who, t.value.owner)) {
        throw new NotFoundError("task", id);
      }
      return c.json(taskView(who, t.value), 200);
    })
    .openapi(showDrain, async (c) => {
      const id = c.req.valid("param").id;
      const t = await store.get(keys.task(id), Task);
      if (!t || !canSee(c.get("principal"), t.value.owner)) {
        throw new NotFoundError("task", id);
      }
      if (t.value.kind !== "host.drain") {
        throw new ConflictError(
          `Task ${id} is a ${t.value.kind}, not a host.drain: it has no drain report`,
        );
      }
      const report = await drainReport(store, id);
      const done = t.value.state === "succeeded" &&
        report.vms.every((v) => v.done);
      return c.json({ ...report, done }, 200);
    });
}
