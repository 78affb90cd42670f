/**
 * The routes of stopping and rebooting a VM (`POST /v1/vms/{id}/stop`,
 * `POST /v1/vms/{id}/reboot`) and their optional JSON body; the handlers
 * live with the other VM routes in api/vms.ts, the rules in
 * resources/vms/lifecycle.ts.
 *
 * @example
 * ```ts
 * router().openapi(stopVm, (c) => { const { force } = c.req.valid("json"); ... });
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { IdParams, MaybeTaskDoc, VmDoc } from "./env.ts";
import { errorResponses } from "./errors.ts";

/** The longest time a request may give the guest, in seconds. */
export const MAX_POWER_TIMEOUT_SECONDS = 3600;

/** How to stop or reboot: both optional; no body is `{}`. */
export const PowerInput = z.object({
  force: z.boolean().optional().openapi({
    description: "The hard stop (or reset) at once, without asking the guest",
  }),
  timeoutSeconds: z.number().int().min(1).max(MAX_POWER_TIMEOUT_SECONDS)
    .optional().openapi({
      description:
        "How long the guest gets to shut down (or reboot) by itself before " +
        "the hard stop; default the host's `worker.stopTimeoutSeconds` (60)",
      example: 30,
    }),
}).strict().openapi("PowerInput");
export type PowerInput = z.infer<typeof PowerInput>;

const VmAndMaybeTask = z.object({ vm: VmDoc, task: MaybeTaskDoc });

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const body = {
  required: false,
  content: { "application/json": { schema: PowerInput } },
};

export const stopVm = createRoute({
  method: "post",
  path: "/{id}/stop",
  summary: "Stop a VM",
  description:
    "Task `vm.stop` on the VM's host presses the guest's ACPI power button " +
    "and gives it `timeoutSeconds` to shut down, then stops it hard; with " +
    "`force` at once. The task's result says which: `how` is `shutdown` " +
    "or `forced`.",
  request: { params: IdParams, body },
  responses: {
    202: json(VmAndMaybeTask, "Change accepted; `task` carries it out"),
    200: json(VmAndMaybeTask, "Already in the asked state; `task` is null"),
    ...errorResponses(400, 404, 409, 503),
  },
});

export const rebootVm = createRoute({
  method: "post",
  path: "/{id}/reboot",
  summary: "Reboot a running VM",
  description:
    "Task `vm.reboot` on the VM's host sends the guest ctrl-alt-delete and " +
    "gives it `timeoutSeconds` to reboot, then resets it (`system_reset`); " +
    "with `force` at once. The VM stays `running` in the same process; the " +
    "task's result says `how`: `reboot` or `forced`.",
  request: { params: IdParams, body },
  responses: {
    202: json(VmAndMaybeTask, "Reboot accepted; `task` carries it out"),
    ...errorResponses(400, 404, 409, 503),
  },
});
