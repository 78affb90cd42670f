/**
 * What the API and the web pages show of a host: its registration, its
 * liveness (`alive/`, bound to the host's lease), what it offers to
 * placement (allocation ratios and memory reserve), its reserved usage and
 * VMs (`alloc/<host>`, `allocvm/<host>/`) and the time of its last
 * heartbeat. The listing reads every prefix at one etcd revision, so they
 * agree.
 *
 * @example
 * ```ts
 * const views = await listHostViews(store); // by name
 * const h1 = await readHostView(store, "h1"); // NotFoundError if absent
 * ```
 */
import { z } from "@hono/zod-openapi";
import { NotFoundError } from "../core/errors.ts";
import { idOf, keys } from "../core/keys.ts";
import { Alive, Alloc, AllocEntry, Host } from "../core/schemas.ts";
import { effective, legacyIds, reservedOn, usage } from "../scheduler/mod.ts";
import type { Store } from "../core/store.ts";

/** The allocation of a host whose worker reports none (older version). */
const NO_ALLOCATION = { cpuRatio: 1, memoryRatio: 1, reservedMemoryMiB: 0 };

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
export async function listHostViews(store: Store): Promise<HostView[]> {
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

/** One host's view; NotFoundError when it is not registered. */
export async function readHostView(
  store: Store,
  name: string,
): Promise<HostView> {
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
