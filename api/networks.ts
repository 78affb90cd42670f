/**
 * `/v1/networks`: create, list, show and delete networks.
 *
 * A private network is a VXLAN segment: it gets the lowest free VNI of
 * `network.vniMin..vniMax`, the multicast group `ff05::<vni hex>` and an
 * IPv6 /64, the next free one of `network.pool` unless an admin gives one.
 * A public network (admins only) names a bridge the hosts already have
 * (`network.publicBridges`) and the /64 routed to it. The VNI and the /64
 * are taken with `ipam/` keys in the transaction that writes the network,
 * so two creates never get the same. Delete is refused (409) while a VM
 * has a NIC in the network.
 *
 * @example
 * ```ts
 * app.route("/v1/networks", networks({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { defaultNetworkConfig } from "../core/config.ts";
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
  NotFoundError,
} from "../core/errors.ts";
import { keys, newId } from "../core/keys.ts";
import {
  canonicalPrefix6,
  multicastGroup,
  nthPrefix,
  parsePrefix4,
  parsePrefix6,
  prefixCount,
} from "../core/netaddr.ts";
import { IpamEntry, Network, NetworkCreateInput } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { canSee, type Deps, IdParams, type Principal, router } from "./env.ts";
import { errorResponses } from "./errors.ts";

/** How often a create is retried after another create took its VNI or /64. */
const ATTEMPTS = 20;

/**
 * Which free value try `attempt` takes: the lowest at first; after lost
 * races one of the lowest few at random, so concurrent creates spread out.
 */
function skipOf(attempt: number): number {
  return Math.floor(Math.random() * Math.min(2 * attempt, 16));
}

export const NetworkDoc = z.object(Network.shape).openapi("Network");

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

/** What a caller sees of a network: others' VM ids only for its owner. */
function view(who: Principal, net: Network): Network {
  return canSee(who, net.owner) ? net : { ...net, vms: [] };
}

/** Reads a network the principal may see; 404 otherwise. */
export async function readNetwork(store: Store, who: Principal, id: string) {
  const net = await store.get(keys.network(id), Network);
  if (!net || !(net.value.kind === "public" || canSee(who, net.value.owner))) {
    throw new NotFoundError("network", id);
  }
  return net;
}

/**
 * The `skip`th of `candidates` whose key (`keyOf`, under `prefix`) is not
 * taken yet; the last free one when fewer are free; null when none is.
 */
async function nthFree<T>(
  store: Store,
  prefix: string,
  candidates: Iterable<T>,
  keyOf: (value: T) => string,
  skip: number,
): Promise<T | null> {
  const used = new Set(await store.keys(prefix));
  let found: T | null = null;
  for (const value of candidates) {
    if (used.has(keyOf(value))) continue;
    found = value;
    if (skip-- <= 0) break;
  }
  return found;
}

function* range(from: number, to: number): Generator<number> {
  for (let i = from; i <= to; i++) yield i;
}

function* prefixesOf(pool: string): Generator<string> {
  const n = prefixCount(pool);
  for (let i = 0; i < n; i++) yield nthPrefix(pool, i);
}

/** Builds the `/v1/networks` sub-app. */
export function networks({ store, config }: Deps) {
  const net = config.network ?? defaultNetworkConfig();

  /** The `skip`th lowest VNI not in use, or null. */
  const freeVni = (skip: number) =>
    nthFree(
      store,
      keys.ipamVnis,
      range(net.vniMin, net.vniMax),
      keys.ipamVni,
      skip,
    );

  /** The `skip`th first /64 of the pool not in use, or null. */
  const freePrefix = (skip: number) =>
    nthFree(
      store,
      keys.ipamPrefixes,
      prefixesOf(net.pool),
      keys.ipamPrefix,
      skip,
    );

  /** Checks the input beyond its schema; returns the admin-given /64. */
  const check = (who: Principal, input: NetworkCreateInput) => {
    if (input.kind === "public") {
      if (!who.admin) {
        throw new ForbiddenError(
          `Cannot create a public network: ${who.name} is not an admin`,
        );
      }
      if (!input.bridge) {
        throw new InvalidError("bridge", "A public network needs a bridge");
      }
      if (!input.prefix) {
        throw new InvalidError(
          "prefix",
          "A public network needs its IPv6 /64 (prefix)",
        );
      }
      if (input.mode) {
        throw new InvalidError("mode", "mode is for private networks only");
      }
      if (input.dhcp?.v4 || input.dhcp?.v6) {
        throw new InvalidError(
          "dhcp",
          "DHCP is for private networks only: a public network's router serves it",
        );
      }
    } else if (input.bridge) {
      throw new InvalidError("bridge", "bridge is for public networks only");
    }
    let prefix: string | undefined;
    if (input.prefix !== undefined) {
      if (!who.admin) {
        throw new ForbiddenError(
          `Cannot choose a prefix: ${who.name} is not an admin`,
        );
      }
      try {
        if (parsePrefix6(input.prefix).length !== 64) {
          throw new TypeError(`${input.prefix} is not a /64`);
        }
        prefix = canonicalPrefix6(input.prefix);
      } catch (err) {
        throw new InvalidError(
          "prefix",
          `prefix must be an IPv6 /64: ${(err as Error).message}`,
        );
      }
    }
    if (input.ipv4 !== undefined) {
      try {
        parsePrefix4(input.ipv4);
      } catch (err) {
        throw new InvalidError("ipv4", (err as Error).message);
      }
    }
    if (input.dhcp?.v4 && !input.ipv4) {
      throw new InvalidError("dhcp.v4", "DHCPv4 needs an ipv4 subnet");
    }
    return prefix;
  };

  return router()
    .openapi(createNetwork, async (c) => {
      const input = c.req.valid("json");
      const who = c.get("principal");
      const given = check(who, input);
      for (let i = 0; i < ATTEMPTS; i++) {
        const now = new Date().toISOString();
        const prefix = given ?? await freePrefix(skipOf(i));
        if (!prefix) {
          throw new ConflictError(
            `Cannot create network: the pool ${net.pool} has no free /64`,
          );
        }
        const doc: Network = {
          id: newId("net"),
          name: input.name,
          owner: who.name,
          kind: input.kind,
          prefix,
          ...(input.ipv4 ? { ipv4: input.ipv4 } : {}),
          ra: input.kind === "private",
          dhcp: { v6: input.dhcp?.v6 ?? false, v4: input.dhcp?.v4 ?? false },
          vms: [],
          createdAt: now,
        };
        const txn = store.txn().ifAbsent(keys.network(doc.id));
        if (input.kind === "private") {
          const vni = await freeVni(skipOf(i));
          if (vni === null) {
            throw new ConflictError(
              `Cannot create network: no free VNI in ${net.vniMin}..${net.vniMax}`,
            );
          }
          doc.vni = vni;
          doc.mode = input.mode ?? net.mode;
          doc.group = multicastGroup(vni);
          txn.ifAbsent(keys.ipamVni(vni)).put(keys.ipamVni(vni), {
            network: doc.id,
          });
        } else doc.bridge = input.bridge;
        txn.ifAbsent(keys.ipamPrefix(prefix)).put(keys.ipamPrefix(prefix), {
          network: doc.id,
        });
        txn.put(keys.network(doc.id), doc);
        if ((await txn.commit()).ok) return c.json(doc, 201);
        if (given && await store.get(keys.ipamPrefix(given), IpamEntry)) {
          throw new ConflictError(
            `Cannot create network: prefix ${given} is already in use`,
          );
        }
      }
      throw new ConflictError(
        `Cannot create network: other creates took its VNI or prefix ${ATTEMPTS} times; try again`,
      );
    })
    .openapi(listNetworks, async (c) => {
      const who = c.get("principal");
      const { items } = await store.list(keys.networks, Network);
      return c.json({
        items: items.map((kv) => kv.value)
          .filter((n) => n.kind === "public" || canSee(who, n.owner))
          .map((n) => view(who, n)),
      }, 200);
    })
    .openapi(showNetwork, async (c) => {
      const who = c.get("principal");
      const n = await readNetwork(store, who, c.req.valid("param").id);
      return c.json(view(who, n.value), 200);
    })
    .openapi(deleteNetwork, async (c) => {
      const who = c.get("principal");
      const id = c.req.valid("param").id;
      const n = await readNetwork(store, who, id);
      if (!canSee(who, n.value.owner)) {
        throw new ForbiddenError(
          `Cannot delete network ${id}: it is not ${who.name}'s`,
        );
      }
      if (n.value.vms.length > 0) {
        throw new ConflictError(
          `Cannot delete network ${id}: VMs ${
            n.value.vms.join(", ")
          } have NICs in it; detach them first`,
        );
      }
      const txn = store.txn().ifModRevision(n.key, n.modRevision)
        .delete(n.key)
        .delete(keys.ipamPrefix(n.value.prefix));
      if (n.value.vni !== undefined) txn.delete(keys.ipamVni(n.value.vni));
      if (!(await txn.commit()).ok) {
        throw new ConflictError(
          `Cannot delete network ${id}: it changed meanwhile (a VM was attached?); try again`,
        );
      }
      return c.json({ deleted: id }, 200);
    });
}
