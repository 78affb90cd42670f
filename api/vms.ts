/**
 * `/v1/vms`: create, list, show, stop, start, reboot and delete VMs,
 * attach and detach their NICs, and show their user data. The handlers validate (zod), call the VM
 * resource (resources/vms/: the rules, and the one transaction per change
 * that writes the VM with its task) and answer; api/errors.ts maps what
 * it throws.
 *
 * @example
 * ```ts
 * app.route("/v1/vms", vms({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  ID_RE,
  MAX_NICS,
  type Task,
  type Vm,
  VmCreateInput,
} from "../core/schemas.ts";
import type { Caller } from "../resources/deps.ts";
import { taskView, vmView } from "../resources/host_internals.ts";
import * as res from "../resources/vms/mod.ts";
import {
  type Deps,
  IdParams,
  MaybeTaskDoc,
  router,
  TaskDoc,
  VmDoc,
} from "./env.ts";
import { errorResponses } from "./errors.ts";
import { pageOf, PageQuery } from "./pages.ts";
import { rebootVm, stopVm } from "./vm_power.ts";

const VmAndTask = z.object({ vm: VmDoc, task: TaskDoc }).openapi("VmAndTask");
const VmAndMaybeTask = z.object({ vm: VmDoc, task: MaybeTaskDoc })
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
    "the task is `vm.create`, which places it once a host has room; 409 " +
    "when it fits nowhere and its owner already has " +
    "`scheduler.maxPendingVmsPerUser` VMs pending; 403 over its owner's " +
    "quota (`error.quota`: the resource, used, requested, allowed). With an " +
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
    ...errorResponses(400, 403, 409, 415, 503),
  },
});

const listVms = createRoute({
  method: "get",
  path: "/",
  summary: "List VMs, oldest first, a page at a time",
  description: "At most `limit` VMs; follow `continue` until it is null " +
    "(a page may end early, with fewer items and a token). `owner` " +
    "filters by owner; a user sees only their own VMs.",
  request: {
    query: PageQuery.extend({
      owner: z.string().min(1).max(100).optional(),
    }),
  },
  responses: {
    200: json(pageOf(VmDoc, "VmPage"), "VMs visible to the caller"),
    ...errorResponses(400, 503),
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

const showUserData = createRoute({
  method: "get",
  path: "/{id}/user-data",
  summary: "Show a VM's user data",
  description: "The user data given at create, as it was given (UTF-8 " +
    "text); 404 when the VM has none. The VM document shows its size and " +
    "SHA-256 (`userData`).",
  request: { params: IdParams },
  responses: {
    200: {
      description: "The user data",
      content: { "text/plain": { schema: z.string() } },
    },
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

/** A change's VM and task as `who` may see them (no host internals). */
const shown = <T extends Task | null>(
  who: Caller,
  r: { vm: Vm; task: T },
) => ({
  vm: vmView(who, r.vm),
  task: (r.task && taskView(who, r.task)) as T,
});

/** 200 when the VM is in the asked state already, 202 while a task works. */
const statusOf = (r: res.VmChange) => r.done ? 200 : 202;

/** Builds the `/v1/vms` sub-app. */
export function vms(deps: Deps) {
  const { store } = deps;
  return router()
    .openapi(createVm, async (c) => {
      const r = await res.createVm(
        deps,
        c.get("principal"),
        c.req.valid("json"),
        c.req.valid("header")["Idempotency-Key"],
      );
      return r.replayed
        ? c.json(shown(c.get("principal"), r), 200)
        : c.json(shown(c.get("principal"), r), 201);
    })
    .openapi(listVms, async (c) => {
      const page = await res.listVms(
        store,
        c.get("principal"),
        c.req.valid("query"),
      );
      const who = c.get("principal");
      return c.json(
        { ...page, items: page.items.map((v) => vmView(who, v)) },
        200,
      );
    })
    .openapi(showVm, async (c) => {
      const vm = await res.showVm(
        store,
        c.get("principal"),
        c.req.valid("param").id,
      );
      return c.json(vmView(c.get("principal"), vm), 200);
    })
    .openapi(showUserData, async (c) => {
      const data = await res.readUserData(
        store,
        c.get("principal"),
        c.req.valid("param").id,
      );
      return c.text(data, 200, { "Content-Type": "text/plain; charset=utf-8" });
    })
    .openapi(deleteVm, async (c) => {
      const r = await res.deleteVm(
        deps,
        c.get("principal"),
        c.req.valid("param").id,
      );
      return c.json(shown(c.get("principal"), r), statusOf(r));
    })
    .openapi(stopVm, async (c) => {
      const r = await res.stopVm(
        deps,
        c.get("principal"),
        c.req.valid("param").id,
        c.req.valid("json"),
      );
      return c.json(shown(c.get("principal"), r), statusOf(r));
    })
    .openapi(rebootVm, async (c) => {
      const r = await res.rebootVm(
        deps,
        c.get("principal"),
        c.req.valid("param").id,
        c.req.valid("json"),
      );
      return c.json(shown(c.get("principal"), r), 202);
    })
    .openapi(startVm, async (c) => {
      const r = await res.startVm(
        deps,
        c.get("principal"),
        c.req.valid("param").id,
      );
      return c.json(shown(c.get("principal"), r), statusOf(r));
    })
    .openapi(attachNic, async (c) => {
      const r = await res.attachNic(
        deps,
        c.get("principal"),
        c.req.valid("param").id,
        c.req.valid("json").network,
      );
      // 202 also without a task: the route documents one answer.
      return c.json(shown(c.get("principal"), r), 202);
    })
    .openapi(detachNic, async (c) => {
      const { id, slot } = c.req.valid("param");
      const r = await res.detachNic(deps, c.get("principal"), id, slot);
      return c.json(shown(c.get("principal"), r), statusOf(r));
    });
}
