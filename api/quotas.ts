/**
 * `/v1/users/{name}/quota`: a user's limits (the config defaults and what
 * an admin set for the user) and usage. A user shows their own, an admin
 * anyone's; only an admin sets them. `GET /v1/users` (admins) lists the
 * users with usage or quota documents, by name, with the same view. The handlers validate (zod) and call
 * resources/quotas/; api/errors.ts maps what it throws.
 *
 * @example
 * ```ts
 * app.route("/v1/users", quotas({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { QuotaLimits, Usage } from "../core/quota_schemas.ts";
import { NAME_RE } from "../core/totp_token.ts";
import * as res from "../resources/quotas/mod.ts";
import { type Deps, router } from "./env.ts";
import { errorResponses } from "./errors.ts";

const limit = z.number().int().nullable();

/** The answer of both routes: limits in effect, own limits, usage. */
export const QuotaView = z.object({
  user: z.string(),
  limits: z.object({
    vms: limit,
    cpus: limit,
    memoryMiB: limit,
    diskMiB: limit,
    networks: limit,
  }).describe("The limits in effect; null: unlimited"),
  own: QuotaLimits.describe(
    "What an admin set for this user; absent fields: the config default",
  ),
  usage: z.object(Usage.shape).describe(
    "What the user holds: VM documents (also while being deleted), their " +
      "cores, memory and local disk in MiB, and networks",
  ),
}).openapi("Quota");

const UserParams = z.object({
  name: z.string().regex(NAME_RE, "name must be a user name").openapi({
    param: { name: "name", in: "path" },
    example: "alice",
  }),
});

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const showQuota = createRoute({
  method: "get",
  path: "/{name}/quota",
  summary: "Show a user's quota and usage (your own; admins: anyone's)",
  request: { params: UserParams },
  responses: {
    200: json(QuotaView, "The quota"),
    ...errorResponses(400, 403, 503),
  },
});

const setQuota = createRoute({
  method: "put",
  path: "/{name}/quota",
  summary: "Set a user's limits (admins)",
  description: "Replaces what was set for the user: each field a number " +
    "(0: none allowed), null (unlimited) or left out (the config default). " +
    "Lowering a limit below the usage refuses new creates only.",
  request: {
    params: UserParams,
    body: {
      required: true,
      content: { "application/json": { schema: QuotaLimits } },
    },
  },
  responses: {
    200: json(QuotaView, "The quota as set"),
    ...errorResponses(400, 403, 415, 503),
  },
});

const UserListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(res.MAX_USERS_PAGE).default(100),
  after: z.string().regex(NAME_RE, "after must be a user name").optional()
    .openapi({ description: "The `next` of the previous page" }),
});

const listUsers = createRoute({
  method: "get",
  path: "/",
  summary: "List users with usage or own limits, by name (admins)",
  description: "Users who hold something (a usage document) or have " +
    "limits an admin set; others have the config defaults. Follow `next` " +
    "as `after` until it is null.",
  request: { query: UserListQuery },
  responses: {
    200: json(
      z.object({
        items: z.array(QuotaView),
        next: z.string().nullable().openapi({
          description: "The last user of this page; null on the last page",
        }),
      }).openapi("UserPage"),
      "A page of users with their quotas",
    ),
    ...errorResponses(400, 403, 503),
  },
});

/** Builds the `/v1/users` sub-app. */
export function quotas(deps: Deps) {
  return router()
    .openapi(listUsers, async (c) => {
      const page = await res.listQuotaUsers(
        deps,
        c.get("principal"),
        c.req.valid("query"),
      );
      return c.json(page, 200);
    })
    .openapi(showQuota, async (c) => {
      const q = await res.showQuota(
        deps,
        c.get("principal"),
        c.req.valid("param").name,
      );
      return c.json(q, 200);
    })
    .openapi(setQuota, async (c) => {
      const q = await res.setQuota(
        deps,
        c.get("principal"),
        c.req.valid("param").name,
        c.req.valid("json"),
      );
      return c.json(q, 200);
    });
}
