/**
 * `/v1/maintenance`: runs maintenance jobs now instead of at their next
 * scheduled time (admins only). `POST /v1/maintenance/rebalance` runs one
 * rebalance round (tasks/rebalance_round.ts) and answers what it did; a
 * round already running elsewhere makes it answer `ran: false`.
 * `GET /v1/maintenance/rebalance` answers what a round would do now
 * (`ucloud host rebalance --dry-run`) and writes nothing.
 * `GET /v1/maintenance/etcd` answers each etcd member's database size,
 * revision and alarms (core/etcd_members.ts; `ucloud host list`).
 *
 * @example
 * ```ts
 * app.route("/v1/maintenance", maintenance({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ConfigSchema } from "../core/config.ts";
import { memberStatuses } from "../core/etcd_members.ts";
import { planOnce, rebalanceOnce } from "../tasks/rebalance_round.ts";
import { type Deps, requireAdmin, router } from "./env.ts";
import { errorResponses } from "./errors.ts";

const PlannedMove = z.object({
  vm: z.string(),
  from: z.string(),
  to: z.string(),
  why: z.string(),
  phase: z.enum(["running", "stopped"]),
});

const Move = PlannedMove.extend({ task: z.string() });

export const RebalancePlanDoc = z.object({
  by: z.string(),
  at: z.string(),
  reason: z.string(),
  drains: z.array(z.object({ host: z.string() })),
  moves: z.array(PlannedMove),
}).openapi("RebalancePlan");

export const RebalanceResultDoc = z.object({
  ran: z.boolean(),
  by: z.string(),
  at: z.string(),
  round: z.string().optional(),
  reason: z.string(),
  drains: z.array(z.object({ host: z.string(), task: z.string() })),
  moves: z.array(Move),
}).openapi("RebalanceResult");

const rebalance = createRoute({
  method: "post",
  path: "/rebalance",
  summary: "Run one rebalance round now (admin)",
  description:
    "Enqueues `host.drain` for draining hosts that still have VMs and, " +
    "with the spread policy, `vm.move` tasks from the most to the least " +
    "loaded host (at most `scheduler.rebalanceMaxMoves`).",
  responses: {
    200: {
      description: "What the round did, or why it did not run",
      content: { "application/json": { schema: RebalanceResultDoc } },
    },
    ...errorResponses(403, 503),
  },
});

const plan = createRoute({
  method: "get",
  path: "/rebalance",
  summary: "What a rebalance round would do now; enqueues nothing (admin)",
  description:
    "The drains a round would resume and the moves it would enqueue, " +
    "each with its reason; no lock is taken and nothing is written.",
  responses: {
    200: {
      description: "The plan of a round run now",
      content: { "application/json": { schema: RebalancePlanDoc } },
    },
    ...errorResponses(403, 503),
  },
});

export const EtcdStatusDoc = z.object({
  members: z.array(z.object({
    name: z.string(),
    endpoints: z.array(z.string()),
    version: z.string(),
    dbSize: z.number().int().describe("Database file size, bytes"),
    dbSizeInUse: z.number().int().describe(
      "Bytes of the file in use; the rest is freed by a defragmentation",
    ),
    revision: z.string().describe("The current revision it sees"),
    leader: z.boolean(),
    alarms: z.array(z.string()).describe("Raised alarms, e.g. NOSPACE"),
    error: z.string().optional().describe("Set when it did not answer"),
  })),
}).openapi("EtcdStatus");

const etcdStatus = createRoute({
  method: "get",
  path: "/etcd",
  summary: "Each etcd member's database size, revision and alarms (admin)",
  responses: {
    200: {
      description: "Every member of the etcd cluster, in member order",
      content: { "application/json": { schema: EtcdStatusDoc } },
    },
    ...errorResponses(403, 503),
  },
});

/** Builds the `/v1/maintenance` sub-app. */
export function maintenance({ store, config }: Deps) {
  const settings = {
    tasks: config.tasks,
    scheduler: config.scheduler ??
      ConfigSchema.shape.scheduler.parse(undefined),
  };
  return router().openapi(rebalance, async (c) => {
    const who = c.get("principal");
    requireAdmin(who, "run a rebalance round");
    const r = await rebalanceOnce(store, settings, { by: `api:${who.name}` });
    return c.json(r, 200);
  }).openapi(plan, async (c) => {
    const who = c.get("principal");
    requireAdmin(who, "plan a rebalance round");
    return c.json(
      await planOnce(store, settings, { by: `api:${who.name}` }),
      200,
    );
  }).openapi(etcdStatus, async (c) => {
    requireAdmin(c.get("principal"), "see the etcd status");
    return c.json({ members: await memberStatuses(store) }, 200);
  });
}
