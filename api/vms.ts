/**
 * `/v1/vms`: create, list, show, stop, start, reboot and delete VMs. Every change
 * writes the VM document and the task that carries it out in one etcd
 * transaction that compares what was read (DESIGN.md rule 1).
 *
 * @example
 * ```ts
 * app.route("/v1/vms", vms({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ConflictError, NotFoundError } from "../core/errors.ts";
import { keys, newId } from "../core/keys.ts";
import {
  ID_RE,
  Idempotency,
  MAX_NICS,
  Task,
  Vm,
  VmCreateInput,
  type VmStatus,
} from "../core/schemas.ts";
import type { Store, Txn } from "../core/store.ts";
import {
  checkHostBridges,
  type NicPlan,
  planNics,
  releaseNics,
} from "../core/nics.ts";
import {
  needOf,
  placeInCache,
  PlacementCache,
  type Policy,
  readyCache,
  reserveIn,
} from "../scheduler/mod.ts";
import { enqueue, newTask } from "../tasks/queue.ts";
import {
  canSee,
  type Deps,
  IdParams,
  type Principal,
  router,
  TaskDoc,
  VmDoc,
} from "./env.ts";
import { errorResponses } from "./errors.ts";
import { powerPayload, rebootVm, stopVm } from "./vm_power.ts";

/** How often a read-modify-write is retried after a lost compare. */
const ATTEMPTS = 5;

const VmAndTask = z.object({ vm: VmDoc, task: TaskDoc }).openapi("VmAndTask");
const VmAndMaybeTask = z.object({ vm: VmDoc, task: TaskDoc.nullable() })
  .openapi("VmAndMaybeTask");

const IdempotencyHeaders = z.object({
  "Idempotency-Key": z.string().regex(
    /^[A-Za-z0-9_.:-]{1,200}$/,
    "Idempotency-Key must be 1-200 characters of A-Z a-z 0-9 _ . : -",
  ).optional(),
});

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const createVm = createRoute({
  method: "post",
  path: "/",
  summary: "Create a VM",
  description:
    "Writes the VM and its first task in one transaction. When the API's " +
    "placement cache finds a host with room, the VM is placed in that same " +
    "transaction (phase `scheduled`, its reservation on the host, task " +
    "`vm.start` there); otherwise it is `pending` with `status.reason` and " +
    "the task is `vm.create`, which places it once a host has room. With an " +
    "`Idempotency-Key`, repeating the same request returns what the first made.",
  request: {
    headers: IdempotencyHeaders,
    body: {
      required: true,
      content: { "application/json": { schema: VmCreateInput } },
    },
  },
  responses: {
    201: json(VmAndTask, "VM created"),
    200: json(VmAndMaybeTask, "Replay of an earlier request with this key"),
    ...errorResponses(400, 409, 415, 503),
  },
});

const listVms = createRoute({
  method: "get",
  path: "/",
  summary: "List VMs",
  responses: {
    200: json(z.object({ items: z.array(VmDoc) }), "VMs visible to the caller"),
    ...errorResponses(503),
  },
});

const showVm = createRoute({
  method: "get",
  path: "/{id}",
  summary: "Show a VM",
  request: { params: IdParams },
  responses: {
    200: json(VmDoc, "The VM"),
    ...errorResponses(400, 404, 503),
  },
});

const action = (path: string, summary: string, method: "post" | "delete") =>
  createRoute({
    method,
    path,
    summary,
    request: { params: IdParams },
    responses: {
      202: json(VmAndMaybeTask, "Change accepted; `task` carries it out"),
      200: json(VmAndMaybeTask, "Already in the asked state; `task` is null"),
      ...errorResponses(400, 404, 409, 503),
    },
  });

const deleteVm = action("/{id}", "Delete a VM", "delete");
const startVm = action("/{id}/start", "Start a VM", "post");

const NicParams = IdParams.extend({
  slot: z.coerce.number().int().min(0).max(MAX_NICS - 1).openapi({
    param: { name: "slot", in: "path" },
    example: 0,
  }),
});

const attachNic = createRoute({
  method: "post",
  path: "/{id}/nics",
  summary: "Attach a network to a VM (hot-plugs a NIC into a running VM)",
  request: {
    params: IdParams,
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z.object({ network: z.string().regex(ID_RE) }).strict(),
        },
      },
    },
  },
  responses: {
    202: json(VmAndMaybeTask, "NIC added; `task` (vm.nics) plugs it in"),
    ...errorResponses(400, 404, 409, 415, 503),
  },
});

const detachNic = createRoute({
  method: "delete",
  path: "/{id}/nics/{slot}",
  summary: "Detach a NIC from a VM (hot-unplugs it from a running VM)",
  request: { params: NicParams },
  responses: {
    202: json(VmAndMaybeTask, "NIC detaching; `task` (vm.nics) unplugs it"),
    200: json(VmAndMaybeTask, "NIC removed (the VM was not running)"),
    ...errorResponses(400, 404, 409, 503),
  },
});

/** Phases in which the VM's host may have its process and ports. */
const ON_HOST = new Set(["scheduled", "starting", "running", "stopping"]);

/** What an inline placement did, unless it gave up with a reason. */
type Inline =
  | { placed: true; vm: Vm; task: Task }
  | { placed: false; taken: true }
  | { placed: false; stale: true };

/** What a state change decided: nothing to do, or a new VM plus its task. */
type Plan =
  | { change: false; status: 200 | 202 }
  | { change: true; vm: Vm; task: Task };

/** Builds the `/v1/vms` sub-app. */
export function vms({ store, config }: Deps) {
  const maxAttempts = config.tasks.maxAttempts;
  const policy: Policy = config.scheduler?.policy ?? "spread";

  const task = (
    kind: string,
    target: string,
    vm: Vm,
    now: Date,
    more: Record<string, unknown> = {},
  ) =>
    newTask({
      kind,
      target,
      payload: { vm: vm.id, ...more },
      owner: vm.owner,
      maxAttempts,
      now,
    });

  /** The VM with `phase` and without a stale failure reason. */
  const moved = (
    vm: Vm,
    desired: Vm["desired"],
    phase: VmStatus["phase"],
    now: Date,
  ): Vm => {
    const { reason: _, ...status } = vm.status;
    return {
      ...vm,
      desired,
      status: { ...status, phase, updatedAt: now.toISOString() },
    };
  };

  /**
   * Reads the VM, lets `plan` decide, and writes the change in a
   * transaction comparing the read revision; retries a lost compare.
   */
  const change = async (
    who: Principal,
    id: string,
    plan: (vm: Vm, now: Date) => Plan,
  ): Promise<{ status: 200 | 202; vm: Vm; task: Task | null }> => {
    for (let i = 0; i < ATTEMPTS; i++) {
      const cur = await readVm(store, who, id);
      const p = plan(cur.value, new Date());
      if (!p.change) return { status: p.status, vm: cur.value, task: null };
      const txn = store.txn().ifModRevision(cur.key, cur.modRevision)
        .put(cur.key, p.vm);
      const r = await enqueue(txn, p.task).commit();
      if (r.ok) return { status: 202, vm: p.vm, task: p.task };
    }
    throw new ConflictError(
      `Cannot change VM ${id}: it changed ${ATTEMPTS} times while trying; try again`,
    );
  };

  /** Answers a create whose Idempotency-Key is already taken. */
  const replay = async (
    owner: string,
    key: string,
    request: string,
  ): Promise<{ vm: Vm; task: Task | null }> => {
    const prior = await store.get(keys.idempotency(owner, key), Idempotency);
    if (!prior) {
      throw new ConflictError(
        `Cannot create VM: Idempotency-Key ${key} changed concurrently; try again`,
      );
    }
    if (prior.value.request !== request) {
      throw new ConflictError(
        `Idempotency-Key ${key} was used with a different request`,
      );
    }
    const [pvm, ptask] = await Promise.all([
      store.get(keys.vm(prior.value.vm), Vm),
      store.get(keys.task(prior.value.task), Task),
    ]);
    if (!pvm) {
      throw new ConflictError(
        `Idempotency-Key ${key} created VM ${prior.value.vm}, which no longer exists`,
      );
    }
    return { vm: pvm.value, task: ptask?.value ?? null };
  };

  /**
   * Places a new VM in the transaction that creates it: the VM (phase
   * scheduled), its reservation (scheduler/place.ts `reserveIn()`) and
   * `vm.start` on that host. The scheduler retries a lost compare with the
   * refreshed reservation; gives up with a reason.
   */
  const placeInline = async (
    cache: PlacementCache,
    vm: Vm,
    idem: { key: string; request: string } | undefined,
    now: Date,
    plan: NicPlan | null,
  ): Promise<Inline | { placed: false; reason: string }> => {
    const r = await placeInCache<Inline>(
      cache,
      vm.id,
      needOf(vm),
      policy,
      async (p) => {
        const placed: Vm = {
          ...vm,
          status: {
            phase: "scheduled",
            host: p.host,
            // Owned by the incarnation whose alive key the txn compares.
            incarnation: p.lease,
            updatedAt: now.toISOString(),
          },
        };
        const start = newTask({
          kind: "vm.start",
          target: p.host,
          payload: { vm: vm.id },
          owner: vm.owner,
          maxAttempts,
          idempotencyKey: idem?.key,
          now,
        });
        const txn = reserveIn(
          store.txn().ifAbsent(keys.vm(vm.id)).put(keys.vm(vm.id), placed),
          p,
        );
        enqueue(txn, start);
        plan?.apply(txn);
        if (idem) {
          const k = keys.idempotency(vm.owner, idem.key);
          txn.ifAbsent(k).put(k, {
            vm: vm.id,
            task: start.id,
            request: idem.request,
          });
        }
        const res = await txn.commit();
        if (res.ok) {
          return {
            committed: res.revision,
            value: { placed: true, vm: placed, task: start },
          };
        }
        if (
          idem &&
          await store.get(keys.idempotency(vm.owner, idem.key), Idempotency)
        ) return { value: { placed: false, taken: true } };
        if (plan && !await plan.fresh()) {
          return { value: { placed: false, stale: true } };
        }
        return "lost";
      },
    );
    return "reason" in r ? { placed: false, reason: r.reason } : r.value;
  };

  return router()
    .openapi(createVm, async (c) => {
      const input = c.req.valid("json");
      const key = c.req.valid("header")["Idempotency-Key"];
      const who = c.get("principal");
      const owner = who.name;
      const request = key === undefined ? "" : await requestHash(input);
      const id = newId("vm");
      for (let i = 0; i < ATTEMPTS; i++) {
        const now = new Date();
        // NICs: slots, MACs and addresses, taken in the create transaction.
        const plan = input.networks?.length
          ? await planNics(store, who, id, input.networks)
          : null;
        let vm: Vm = {
          id,
          owner,
          spec: input,
          nics: plan?.nics ?? [],
          desired: "running",
          status: { phase: "pending", updatedAt: now.toISOString() },
          createdAt: now.toISOString(),
        };
        const cache = await readyCache(PlacementCache.for(store));
        if (cache) {
          const r = await placeInline(
            cache,
            vm,
            key === undefined ? undefined : { key, request },
            now,
            plan,
          );
          if (r.placed) return c.json({ vm: r.vm, task: r.task }, 201);
          if ("taken" in r) {
            return c.json(await replay(owner, key!, request), 200);
          }
          if ("stale" in r) continue;
          vm = { ...vm, status: { ...vm.status, reason: r.reason } };
        }
        const t = newTask({
          kind: "vm.create",
          target: "any",
          payload: { vm: vm.id },
          owner,
          maxAttempts,
          idempotencyKey: key,
          now,
        });
        const txn = store.txn().ifAbsent(keys.vm(vm.id)).put(
          keys.vm(vm.id),
          vm,
        );
        enqueue(txn, t);
        plan?.apply(txn);
        if (key !== undefined) {
          const idem = keys.idempotency(owner, key);
          txn.ifAbsent(idem).put(idem, { vm: vm.id, task: t.id, request });
        }
        if ((await txn.commit()).ok) return c.json({ vm, task: t }, 201);
        if (
          key !== undefined &&
          await store.get(keys.idempotency(owner, key), Idempotency)
        ) return c.json(await replay(owner, key, request), 200);
        if (plan && !await plan.fresh()) continue;
        throw new ConflictError(`Cannot create VM ${vm.id}: id already taken`);
      }
      throw new ConflictError(
        `Cannot create VM: its networks changed ${ATTEMPTS} times while trying; try again`,
      );
    })
    .openapi(listVms, async (c) => {
      const who = c.get("principal");
      const { items } = await store.list(keys.vms, Vm);
      return c.json({
        items: items.map((kv) => kv.value).filter((v) => canSee(who, v.owner)),
      }, 200);
    })
    .openapi(showVm, async (c) => {
      const vm = await readVm(
        store,
        c.get("principal"),
        c.req.valid("param").id,
      );
      return c.json(vm.value, 200);
    })
    .openapi(deleteVm, async (c) => {
      const r = await change(
        c.get("principal"),
        c.req.valid("param").id,
        (vm, now) => {
          if (vm.desired === "deleted") return { change: false, status: 202 };
          return {
            change: true,
            vm: moved(vm, "deleted", "deleting", now),
            task: task("vm.delete", vm.status.host ?? "any", vm, now),
          };
        },
      );
      return c.json({ vm: r.vm, task: r.task }, r.status);
    })
    .openapi(stopVm, async (c) => {
      const power = powerPayload(c.req.valid("json"));
      const r = await change(
        c.get("principal"),
        c.req.valid("param").id,
        (vm, now) => {
          if (vm.desired === "deleted") {
            throw new ConflictError(
              `Cannot stop VM ${vm.id}: it is being deleted`,
            );
          }
          if (vm.desired === "stopped" && vm.status.phase === "stopped") {
            return { change: false, status: 200 };
          }
          const host = vm.status.host;
          if (!host) {
            throw new ConflictError(
              `Cannot stop VM ${vm.id}: it has no host yet (phase ${vm.status.phase})`,
            );
          }
          return {
            change: true,
            vm: moved(vm, "stopped", "stopping", now),
            task: task("vm.stop", host, vm, now, power),
          };
        },
      );
      return c.json({ vm: r.vm, task: r.task }, r.status);
    })
    .openapi(rebootVm, async (c) => {
      const who = c.get("principal");
      const id = c.req.valid("param").id;
      const power = powerPayload(c.req.valid("json"));
      for (let i = 0; i < ATTEMPTS; i++) {
        const cur = await readVm(store, who, id);
        const vm = cur.value;
        const host = vm.status.host;
        if (
          vm.desired !== "running" || vm.status.phase !== "running" || !host
        ) {
          throw new ConflictError(
            `Cannot reboot VM ${id}: it is ${vm.status.phase}, not running`,
          );
        }
        // The VM stays running: only the task is written, comparing the
        // revision that was seen running.
        const t = task("vm.reboot", host, vm, new Date(), power);
        const txn = store.txn().ifModRevision(cur.key, cur.modRevision);
        if ((await enqueue(txn, t).commit()).ok) {
          return c.json({ vm, task: t }, 202);
        }
      }
      throw new ConflictError(
        `Cannot reboot VM ${id}: it changed ${ATTEMPTS} times while trying; try again`,
      );
    })
    .openapi(startVm, async (c) => {
      const r = await change(
        c.get("principal"),
        c.req.valid("param").id,
        (vm, now) => {
          if (vm.desired === "deleted") {
            throw new ConflictError(
              `Cannot start VM ${vm.id}: it is being deleted`,
            );
          }
          if (vm.desired === "running" && vm.status.phase === "running") {
            return { change: false, status: 200 };
          }
          // A start by hand begins a new restart window (phase error ends).
          const { crashes: _, ...status } = vm.status;
          vm = { ...vm, status };
          const host = vm.status.host;
          if (!host) {
            return {
              change: true,
              vm: moved(vm, "running", "pending", now),
              task: task("vm.create", "any", vm, now),
            };
          }
          return {
            change: true,
            vm: moved(vm, "running", "starting", now),
            task: task("vm.start", host, vm, now),
          };
        },
      );
      return c.json({ vm: r.vm, task: r.task }, r.status);
    })
    .openapi(attachNic, async (c) => {
      const who = c.get("principal");
      const id = c.req.valid("param").id;
      const network = c.req.valid("json").network;
      for (let i = 0; i < ATTEMPTS; i++) {
        const cur = await readVm(store, who, id);
        const vm = cur.value;
        if (vm.desired === "deleted") {
          throw new ConflictError(
            `Cannot attach to VM ${id}: it is being deleted`,
          );
        }
        if (vm.nics.some((n) => n.network === network)) {
          throw new ConflictError(
            `Cannot attach network ${network} to VM ${id}: it has a NIC in it already`,
          );
        }
        const plan = await planNics(
          store,
          who,
          id,
          [network],
          vm.nics,
          () => "network",
        );
        const hostHas = vm.status.host
          ? await checkHostBridges(store, vm.status.host, id, plan.added)
          : (txn: Txn) => txn;
        const now = new Date();
        const next: Vm = { ...vm, nics: plan.nics };
        const txn = plan.apply(hostHas(
          store.txn().ifModRevision(cur.key, cur.modRevision).put(
            cur.key,
            next,
          ),
        ));
        const t = vm.status.host && ON_HOST.has(vm.status.phase)
          ? task("vm.nics", vm.status.host, vm, now)
          : null;
        if (t) enqueue(txn, t);
        if ((await txn.commit()).ok) return c.json({ vm: next, task: t }, 202);
      }
      throw new ConflictError(
        `Cannot attach to VM ${id}: it changed ${ATTEMPTS} times while trying; try again`,
      );
    })
    .openapi(detachNic, async (c) => {
      const who = c.get("principal");
      const { id, slot } = c.req.valid("param");
      for (let i = 0; i < ATTEMPTS; i++) {
        const cur = await readVm(store, who, id);
        const vm = cur.value;
        const nic = vm.nics.find((n) => n.slot === slot);
        if (!nic) throw new NotFoundError("nic", `${id}/${slot}`);
        if (nic.state === "detaching") {
          return c.json({ vm, task: null }, 202);
        }
        const now = new Date();
        const txn = store.txn().ifModRevision(cur.key, cur.modRevision);
        let next: Vm;
        let t: Task | null = null;
        if (vm.status.host && ON_HOST.has(vm.status.phase)) {
          // The host unplugs it, then drops it and frees its addresses.
          next = {
            ...vm,
            nics: vm.nics.map((n) =>
              n.slot === slot ? { ...n, state: "detaching" as const } : n
            ),
          };
          t = task("vm.nics", vm.status.host, vm, now);
          enqueue(txn, t);
        } else {
          const kept = vm.nics.filter((n) => n.slot !== slot);
          next = { ...vm, nics: kept };
          await releaseNics(store, txn, id, [nic], kept);
        }
        txn.put(cur.key, next);
        if ((await txn.commit()).ok) {
          return c.json({ vm: next, task: t }, t ? 202 : 200);
        }
      }
      throw new ConflictError(
        `Cannot detach from VM ${id}: it changed ${ATTEMPTS} times while trying; try again`,
      );
    });
}

/** Reads a VM the principal may see; 404 otherwise (even when it exists). */
async function readVm(store: Store, who: Principal, id: string) {
  const vm = await store.get(keys.vm(id), Vm);
  if (!vm || !canSee(who, vm.value.owner)) throw new NotFoundError("vm", id);
  return vm;
}

/** sha-256 (hex) of the JSON of `value` with object keys sorted. */
export async function requestHash(value: unknown): Promise<string> {
  const data = new TextEncoder().encode(canonicalJson(value));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}
