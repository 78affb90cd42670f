/**
 * `/v1/tasks`: list and show task documents, newest first. Non-admins see
 * only the tasks they own. `GET /v1/tasks/{id}/drain` reports what a
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
import { taskView } from "../resources/host_internals.ts";
import { drainReport } from "../tasks/drain_report.ts";
import { canSee, type Deps, IdParams, router, TaskDoc } from "./env.ts";
import { errorResponses } from "./errors.ts";

export const TaskQuery = z.object({
  state: TaskState.optional(),
  kind: z.string().min(1).max(100).optional(),
  vm: z.string().regex(ID_RE, "vm must be a VM id").optional(),
  target: z.string().min(1).max(100).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const listTasks = createRoute({
  method: "get",
  path: "/",
  summary: "List tasks, newest first",
  request: { query: TaskQuery },
  responses: {
    200: {
      description: "Matching tasks visible to the caller",
      content: {
        "application/json": { schema: z.object({ items: z.array(TaskDoc) }) },
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
      const who = c.get("principal");
      const q = c.req.valid("query");
      const { items } = await store.list(keys.tasks, Task);
      const out: Task[] = [];
      // Task ids sort by creation time, so etcd's key order reversed is newest first.
      for (let i = items.length - 1; i >= 0 && out.length < q.limit; i--) {
        const t = items[i].value;
        if (!canSee(who, t.owner)) continue;
        if (q.state && t.state !== q.state) continue;
        if (q.kind && t.kind !== q.kind) continue;
        if (q.target && t.target !== q.target) continue;
        if (q.vm && t.payload.vm !== q.vm) continue;
        out.push(taskView(who, t));
      }
      return c.json({ items: out }, 200);
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
