/**
 * `/v1/hosts`: the registered hosts with their liveness (`alive/`, bound to
 * the host's lease), what they offer to placement (allocation ratios and
 * memory reserve), their reserved usage and VMs (`alloc/<host>`) and the
 * time of their last heartbeat; draining and enabling a host (admins only).
 * The three listings are read at one etcd revision, so they agree.
 *
 * Draining sets the host's state to `draining` (placement skips it) and
 * enqueues `host.drain`, which moves every VM off it, in one transaction;
 * enabling sets it back to `active` and records a finished `host.enable`
 * task, so every state change is a task document. Shutting a host down
 * drains it and then its worker exits in order (workers/shutdown.ts);
 * enabling the host drops a shutdown not yet done.
 *
 * @example
 * ```ts
 * app.route("/v1/hosts", hosts({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ConflictError, NotFoundError } from "../core/errors.ts";
import { idOf, keys } from "../core/keys.ts";
import { Alive, Alloc, AllocEntry, Host } from "../core/schemas.ts";
import { effective, legacyIds, reservedOn, usage } from "../scheduler/mod.ts";
import type { Store } from "../core/store.ts";
import { enqueue, newTask, recordDone } from "../tasks/queue.ts";
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

/** The allocation of a host whose worker reports none (older version). */
const NO_ALLOCATION = { cpuRatio: 1, memoryRatio: 1, reservedMemoryMiB: 0 };

/** How often a state change is retried after a lost compare. */
const ATTEMPTS = 5;

export const HostView = z.object({
  name: z.string(),
  capacity: Host.shape.capacity,
  allocation: z.object({
    cpuRatio: z.number().describe("VM cores placed per host core"),
    memoryRatio: z.number().describe(
      "VM memory placed per MiB of the host's memory less the reserve",
    ),
    reservedMemoryMiB: z.number().int().describe(
      "Memory kept for the host itself",
    ),
  }).describe(
    "What the host's worker offers to placement (its scheduler.cpuAllocationRatio, memoryAllocationRatio, reservedMemoryMiB); 1, 1 and 0 for a worker of an older version",
  ),
  effective: z.object({
    cpus: z.number().int(),
    memoryMiB: z.number().int(),
    diskMiB: z.number().int().optional(),
  }).describe(
    "What placement counts on the host: cpus × cpuRatio, (memoryMiB − reservedMemoryMiB) × memoryRatio, local disk as is; usage is measured against it",
  ),
  usage: z.object({
    cpus: z.number().int(),
    memoryMiB: z.number().int(),
    /** Reserved local disk; only when the host tracks disk. */
    diskMiB: z.number().int().optional(),
    vms: z.number().int(),
  }),
  /** Ids of the VMs reserved on the host. */
  vms: z.array(z.string()),
  state: Host.shape.state,
  alive: z.boolean(),
  /**
   * Its worker stopped in order: until this time the fencer holds the lease
   * for the next worker process; no tasks run, no VMs are placed here.
   */
  handover: z.string().optional(),
  /**
   * An ordered shutdown: asked when and by whom; `done` when its worker
   * exited after the drain (until then the host is shutting down).
   */
  shutdown: z.object({
    at: z.string(),
    by: z.string(),
    done: z.string().optional(),
  }).optional(),
  incarnation: z.string().optional(),
  started: z.string().optional(),
  /** The host's last lease keep-alive (1 s resolution); alive hosts only. */
  lastHeartbeat: z.string().optional(),
  addresses: z.array(z.string()),
  os: z.string(),
  drivers: z.array(z.string()),
}).openapi("HostView");
export type HostView = z.infer<typeof HostView>;

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

const drainHost = createRoute({
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

const enableHost = createRoute({
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

/**
 * The API view of a host from its documents: `alloc` its reservation
 * sums, `vms` the ids of the VMs reserved there (sorted).
 */
function toView(
  h: Host,
  a: Alive | undefined,
  alloc: Alloc | undefined,
  vms: string[],
  heartbeat: string | undefined,
): HostView {
  const used = usage(alloc ?? null);
  return {
    name: h.name,
    capacity: h.capacity,
    allocation: h.allocation ?? NO_ALLOCATION,
    effective: effective(h),
    usage: {
      cpus: used.cpus,
      memoryMiB: used.memoryMiB,
      ...(h.capacity.diskMiB !== undefined
        ? { diskMiB: used.diskMiB ?? 0 }
        : {}),
      vms: used.vms,
    },
    vms,
    state: h.state,
    alive: a !== undefined,
    ...(a?.handover ? { handover: a.handover } : {}),
    ...(h.shutdown
      ? {
        shutdown: {
          at: h.shutdown.at,
          by: h.shutdown.by,
          ...(h.shutdown.done ? { done: h.shutdown.done } : {}),
        },
      }
      : {}),
    ...(a ? { incarnation: a.incarnation, started: a.started } : {}),
    ...(heartbeat ? { lastHeartbeat: heartbeat } : {}),
    addresses: h.addresses,
    os: h.os,
    drivers: h.drivers,
  };
}

/**
 * When the alive lease was last kept alive: now minus the seconds etcd
 * says passed since (`grantedTTL - TTL`, whole seconds only).
 */
async function heartbeat(
  store: Store,
  a: Alive | undefined,
  now: number,
): Promise<string | undefined> {
  if (!a) return undefined;
  const age = await store.leaseAge(a.lease);
  return age === null ? undefined : new Date(now - age * 1000).toISOString();
}

/** Every host's view; the lease lookups run in parallel. */
async function listViews(store: Store): Promise<HostView[]> {
  const hs = await store.list(keys.hosts, Host);
  const at = { revision: hs.revision };
  const [alive, alloc, entries] = await Promise.all([
    store.list(keys.alives, Alive, at),
    store.list(keys.allocs, Alloc, at),
    store.list(keys.allocVms, AllocEntry, at),
  ]);
  const aliveBy = new Map(alive.items.map((kv) => [idOf(kv.key), kv.value]));
  const allocBy = new Map(alloc.items.map((kv) => [idOf(kv.key), kv.value]));
  const vmsBy = new Map<string, string[]>();
  for (const { key } of entries.items) {
    const [host, vm] = key.slice(keys.allocVms.length).split("/");
    vmsBy.set(host, [...vmsBy.get(host) ?? [], vm]);
  }
  const now = Date.now();
  return await Promise.all(hs.items.map(async ({ key, value: h }) => {
    const name = idOf(key);
    const a = aliveBy.get(name);
    const alloc = allocBy.get(name);
    const vms = [
      ...vmsBy.get(name) ?? [],
      ...legacyIds(alloc ?? null),
    ].sort();
    return toView(h, a, alloc, vms, await heartbeat(store, a, now));
  }));
}

/** One host's view; 404 when it is not registered. */
async function readView(store: Store, name: string): Promise<HostView> {
  const [h, a, alloc, vms] = await Promise.all([
    store.get(keys.host(name), Host),
    store.get(keys.alive(name), Alive),
    store.get(keys.alloc(name), Alloc),
    reservedOn(store, name),
  ]);
  if (!h) throw new NotFoundError("host", name);
  const beat = await heartbeat(store, a?.value, Date.now());
  return toView(h.value, a?.value, alloc?.value, vms, beat);
}

/** Builds the `/v1/hosts` sub-app. */
export function hosts({ store, config }: Deps) {
  const maxAttempts = config.tasks.maxAttempts;

  /** Reads the host; 404 when it is not registered. */
  const readHost = async (name: string) => {
    const h = await store.get(keys.host(name), Host);
    if (!h) throw new NotFoundError("host", name);
    return h;
  };

  return router()
    .openapi(listHosts, async (c) => {
      requireAdmin(c.get("principal"), "list hosts");
      return c.json({ items: await listViews(store) }, 200);
    })
    .openapi(drainHost, async (c) => {
      const { name } = c.req.valid("param");
      const who = c.get("principal");
      requireAdmin(who, `drain host ${name}`);
      for (let i = 0; i < ATTEMPTS; i++) {
        const h = await readHost(name);
        if (h.value.state === "draining") {
          return c.json({ host: await readView(store, name), task: null }, 200);
        }
        const task = newTask({
          kind: "host.drain",
          target: "any",
          payload: { host: name, reason: `drained by ${who.name}` },
          owner: who.name,
          maxAttempts,
          by: who,
        });
        const txn = store.txn().ifModRevision(h.key, h.modRevision)
          .put(h.key, { ...h.value, state: "draining" });
        if ((await enqueue(txn, task).commit()).ok) {
          return c.json({ host: await readView(store, name), task }, 202);
        }
      }
      throw new ConflictError(
        `Cannot drain host ${name}: it changed ${ATTEMPTS} times while trying; try again`,
      );
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
      const host = await readView(store, name);
      return task ? c.json({ host, task }, 202) : c.json({ host, task }, 200);
    })
    .openapi(enableHost, async (c) => {
      const { name } = c.req.valid("param");
      const who = c.get("principal");
      requireAdmin(who, `enable host ${name}`);
      for (let i = 0; i < ATTEMPTS; i++) {
        const h = await readHost(name);
        if (h.value.state === "active") {
          return c.json({ host: await readView(store, name), task: null }, 200);
        }
        const task = recordDone({
          kind: "host.enable",
          target: "any",
          payload: { host: name, reason: `enabled by ${who.name}` },
          owner: who.name,
          maxAttempts,
          worker: "api",
          message: `host ${name}: ${h.value.state} -> active`,
          result: { host: name, state: "active", was: h.value.state },
        });
        // A shutdown not yet done is called off with the drain.
        const { shutdown: _, ...rest } = h.value;
        const r = await store.txn().ifModRevision(h.key, h.modRevision)
          .put(h.key, { ...rest, state: "active" })
          .ifAbsent(keys.task(task.id)).put(keys.task(task.id), task)
          .commit();
        if (r.ok) {
          return c.json({ host: await readView(store, name), task }, 200);
        }
      }
      throw new ConflictError(
        `Cannot enable host ${name}: it changed ${ATTEMPTS} times while trying; try again`,
      );
    });
}
