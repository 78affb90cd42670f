/**
 * What every API sub-app shares: the request variables (the principal set by
 * the auth middleware), the dependencies handed to each sub-app, and a
 * router factory that installs the validation hook.
 *
 * @example
 * ```ts
 * const vms = router();
 * vms.openapi(route, (c) => c.json({ who: c.get("principal").name }, 200));
 * ```
 */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { ForbiddenError } from "../core/errors.ts";
import { HOST_RE, ID_RE, Task, Vm } from "../core/schemas.ts";
import type { Caller, ResourceDeps } from "../resources/deps.ts";
import { validationHook } from "./errors.ts";

// The visibility rule is the resources' (resources/deps.ts).
export { canSee } from "../resources/deps.ts";

/**
 * Who makes a request; set by the auth middleware on `/v1/*`. With
 * `X-Act-As`, `name` is the user and `actor` the admin acting for them.
 */
export type Principal = Caller;

export type AppEnv = { Variables: { principal: Principal } };

/** What the resource sub-apps are built from (the resource functions' deps). */
export type Deps = ResourceDeps;

/** A sub-app whose zod failures become JSON 400s naming the field. */
export function router(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

/** The `{id}` path parameter of a VM or task. */
export const IdParams = z.object({
  id: z.string().regex(
    ID_RE,
    "id must be 1-64 lowercase letters, digits or '-', starting with a letter or digit",
  ).openapi({
    param: { name: "id", in: "path" },
    example: "vm-0mbq3k2x1-3f9a0c1d",
  }),
});

/** The `{name}` path parameter of a host. */
export const HostParams = z.object({
  name: z.string().regex(
    HOST_RE,
    "name must be a host name: 1-63 lowercase letters, digits, '.' or '-', starting with a letter or digit",
  ).openapi({ param: { name: "name", in: "path" }, example: "h1" }),
});

/** Throws ForbiddenError (403) unless `p` is an administrator. */
export function requireAdmin(p: Principal, action: string): void {
  if (!p.admin) {
    throw new ForbiddenError(`Cannot ${action}: ${p.name} is not an admin`);
  }
}

/** The VM and task documents as named OpenAPI components. */
// Rebuilt with the extended `z`: zod 4 schemas made before
// @hono/zod-openapi was loaded (core/ is imported first by some entry
// points) have no `.openapi` method of their own.
export const VmDoc = z.object(Vm.shape).openapi("Vm");
export const TaskDoc = z.object(Task.shape).openapi("Task");
/**
 * A task, or null where an answer may hold none. Not `TaskDoc.nullable()`:
 * that would make the `Task` component itself nullable everywhere.
 */
export const MaybeTaskDoc = z.union([TaskDoc, z.null()]);
