/**
 * `/v1/networks`: create, list, show and delete networks. The handlers
 * validate (zod) and call the network resource (resources/networks/:
 * VNI and /64 allocation, the rules of public and private networks);
 * api/errors.ts maps what it throws.
 *
 * @example
 * ```ts
 * app.route("/v1/networks", networks({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { Network, NetworkCreateInput } from "../core/schemas.ts";
import * as nets from "../resources/networks/mod.ts";
import { type Deps, IdParams, router } from "./env.ts";
import { errorResponses } from "./errors.ts";

export const NetworkDoc = z.object({
  ...Network.shape,
  vms: Network.shape.vms.describe(
    `VMs with a NIC in it, at most ${nets.VMS_SHOWN} of them; only for its owner`,
  ),
  vmCount: z.number().int().optional().describe(
    "How many VMs have a NIC in it; only for its owner",
  ),
}).openapi("Network");

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const createNetwork = createRoute({
  method: "post",
  path: "/",
  summary: "Create a network",
  description: "private (default): a VXLAN segment with its own VNI and " +
    "IPv6 /64 (router advertisements, SLAAC). public (admin): a host bridge " +
    "and its /64. A legacy IPv4 subnet is optional.",
  request: {
    body: {
      required: true,
      content: { "application/json": { schema: NetworkCreateInput } },
    },
  },
  responses: {
    201: json(NetworkDoc, "Network created"),
    ...errorResponses(400, 403, 409, 415, 503),
  },
});

const listNetworks = createRoute({
  method: "get",
  path: "/",
  summary: "List networks (the caller's and the public ones)",
  responses: {
    200: json(z.object({ items: z.array(NetworkDoc) }), "Networks"),
    ...errorResponses(503),
  },
});

const showNetwork = createRoute({
  method: "get",
  path: "/{id}",
  summary: "Show a network",
  request: { params: IdParams },
  responses: {
    200: json(NetworkDoc, "The network"),
    ...errorResponses(400, 404, 503),
  },
});

const deleteNetwork = createRoute({
  method: "delete",
  path: "/{id}",
  summary: "Delete a network (refused while VMs use it)",
  request: { params: IdParams },
  responses: {
    200: json(z.object({ deleted: z.string() }), "Network deleted"),
    ...errorResponses(400, 404, 409, 503),
  },
});

/** Builds the `/v1/networks` sub-app. */
export function networks(deps: Deps) {
  const { store } = deps;
  return router()
    .openapi(createNetwork, async (c) => {
      const net = await nets.createNetwork(
        deps,
        c.get("principal"),
        c.req.valid("json"),
      );
      return c.json(net, 201);
    })
    .openapi(listNetworks, async (c) => {
      const items = await nets.listNetworks(store, c.get("principal"));
      return c.json({ items }, 200);
    })
    .openapi(showNetwork, async (c) => {
      const net = await nets.showNetwork(
        store,
        c.get("principal"),
        c.req.valid("param").id,
      );
      return c.json(net, 200);
    })
    .openapi(deleteNetwork, async (c) => {
      const id = c.req.valid("param").id;
      await nets.deleteNetwork(store, c.get("principal"), id);
      return c.json({ deleted: id }, 200);
    });
}
