/**
 * The VM pages under `/web/vms`: the list, the create form, one VM, and
 * its actions (start, stop, delete, attach and detach a network), each a
 * POST that calls the same resource function as its `/v1/vms` route and
 * redirects back with a notice, or shows the VM page again with the API's
 * status and message when refused (nothing written then: each change is
 * one transaction in resources/vms/).
 *
 * @example
 * ```ts
 * pages.route("/vms", vmPages(w));
 * ```
 */
import { type Context, Hono } from "hono";
import { ID_RE, MAX_NICS } from "../../core/schemas.ts";
import { InvalidError, NotFoundError } from "../../core/errors.ts";
import * as res from "../../resources/vms/mod.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import { problemOf, textOf } from "./form.tsx";
import { createPage, createVmAction } from "./vm_create.tsx";
import { detailPage } from "./vm_detail.tsx";
import { listPage } from "./vm_list.tsx";

/** The `{id}` of the path; a malformed one is not found, as any other. */
function idOf(c: Context<WebEnv>): string {
  const id = c.req.param("id") ?? "";
  if (!ID_RE.test(id)) throw new NotFoundError("vm", id.slice(0, 64));
  return id;
}

/** The VM pages. */
export function vmPages(w: WebDeps): Hono<WebEnv> {
  const { deps } = w;
  /** Runs a VM action; refused: the VM page with the problem. */
  const act = (
    run: (c: Context<WebEnv>, id: string) => Promise<unknown>,
    done: string,
    after?: string,
  ) =>
  async (c: Context<WebEnv>) => {
    const id = idOf(c);
    try {
      await run(c, id);
    } catch (err) {
      const p = problemOf(err);
      // The VM itself not found (or not the user's): the 404 page.
      if (!p || (err instanceof NotFoundError && err.kind === "vm")) throw err;
      return await detailPage(c, w, id, p);
    }
    return c.redirect(`${after ?? `/web/vms/${id}`}?done=${done}`, 303);
  };
  const who = (c: Context<WebEnv>) => c.get("principal");
  return new Hono<WebEnv>()
    .get("/", listPage(w))
    .post("/", createVmAction(w))
    .get("/new", createPage(w))
    .get("/:id", (c) => detailPage(c, w, idOf(c)))
    .post(
      "/:id/start",
      act((c, id) => res.startVm(deps, who(c), id), "started"),
    )
    .post(
      "/:id/stop",
      act(async (c, id) => {
        const force = textOf(await c.req.formData(), "force") === "1";
        return res.stopVm(deps, who(c), id, force ? { force } : {});
      }, "stopped"),
    )
    .post(
      "/:id/delete",
      act((c, id) => res.deleteVm(deps, who(c), id), "deleted", "/web/vms"),
    )
    .post(
      "/:id/nics",
      act(async (c, id) => {
        const network = textOf(await c.req.formData(), "network");
        if (!ID_RE.test(network)) {
          throw new InvalidError("network", "network must be a network id");
        }
        return res.attachNic(deps, who(c), id, network);
      }, "attached"),
    )
    .post(
      "/:id/nics/:slot/detach",
      act((c, id) => {
        const slot = Number(c.req.param("slot"));
        if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_NICS) {
          throw new InvalidError("slot", `slot must be 0-${MAX_NICS - 1}`);
        }
        return res.detachNic(deps, who(c), id, slot);
      }, "detached"),
    );
}
