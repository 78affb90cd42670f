/**
 * `/v1/hosts`: the registered hosts with their liveness (`alive/`, bound to
 * the host's lease) and their reserved usage (sums over `alloc/<host>`).
 * The three listings are read at one etcd revision, so they agree.
 *
 * @example
 * ```ts
 * app.route("/v1/hosts", hosts({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { idOf, keys } from "../core/keys.ts";
import { Alive, Alloc, Host } from "../core/schemas.ts";
import { type Deps, router } from "./env.ts";
import { errorResponses } from "./errors.ts";

export const HostView = z.object({
  name: z.string(),
  capacity: Host.shape.capacity,
  usage: z.object({
    cpus: z.number().int(),
    memoryMiB: z.number().int(),
    vms: z.number().int(),
  }),
  state: Host.shape.state,
  alive: z.boolean(),
  incarnation: z.string().optional(),
  started: z.string().optional(),
  addresses: z.array(z.string()),
  os: z.string(),
  drivers: z.array(z.string()),
}).openapi("HostView");
export type HostView = z.infer<typeof HostView>;

const listHosts = createRoute({
  method: "get",
  path: "/",
  summary: "List hosts with liveness and reserved usage",
  responses: {
    200: {
      description: "Every registered host, by name",
      content: {
        "application/json": { schema: z.object({ items: z.array(HostView) }) },
      },
    },
    ...errorResponses(503),
  },
});

/** Builds the `/v1/hosts` sub-app. */
export function hosts({ store }: Deps) {
  return router().openapi(listHosts, async (c) => {
    const hs = await store.list(keys.hosts, Host);
    const at = { revision: hs.revision };
    const [alive, alloc] = await Promise.all([
      store.list(keys.alives, Alive, at),
      store.list(keys.allocs, Alloc, at),
    ]);
    const aliveBy = new Map(alive.items.map((kv) => [idOf(kv.key), kv.value]));
    const allocBy = new Map(alloc.items.map((kv) => [idOf(kv.key), kv.value]));
    const items = hs.items.map(({ key, value: h }): HostView => {
      const a = aliveBy.get(idOf(key));
      const vms = Object.values(allocBy.get(idOf(key))?.vms ?? {});
      return {
        name: h.name,
        capacity: h.capacity,
        usage: {
          cpus: vms.reduce((n, v) => n + v.cpus, 0),
          memoryMiB: vms.reduce((n, v) => n + v.memoryMiB, 0),
          vms: vms.length,
        },
        state: h.state,
        alive: a !== undefined,
        ...(a ? { incarnation: a.incarnation, started: a.started } : {}),
        addresses: h.addresses,
        os: h.os,
        drivers: h.drivers,
      };
    });
    return c.json({ items }, 200);
  });
}
