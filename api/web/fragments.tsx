/**
 * `GET /web/fragments/vm-row/{id}` and `/web/fragments/task-row/{id}`:
 * exactly one table row (api/web/vm_rows.tsx) of a VM or task the user may
 * see, for live.js to put in place of the old one; 404 with an empty body
 * for one they may not see or that is gone.
 *
 * @example
 * ```ts
 * pages.route("/fragments", fragments(w));
 * ```
 */
import { Hono } from "hono";
import { keys } from "../../core/keys.ts";
import { ID_RE, Task } from "../../core/schemas.ts";
import { NotFoundError } from "../../core/errors.ts";
import { canSee } from "../../resources/deps.ts";
import { taskView, vmView } from "../../resources/host_internals.ts";
import { showVm } from "../../resources/vms/mod.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import { TaskRow, VmRow } from "./vm_rows.tsx";

/** The fragment routes. */
export function fragments({ deps }: WebDeps): Hono<WebEnv> {
  const gone = () => new Response(null, { status: 404 });
  return new Hono<WebEnv>()
    .get("/vm-row/:id", async (c) => {
      const id = c.req.param("id");
      const who = c.get("principal");
      if (!ID_RE.test(id)) return gone();
      try {
        const vm = vmView(who, await showVm(deps.store, who, id));
        return c.html(<VmRow vm={vm} />);
      } catch (err) {
        if (err instanceof NotFoundError) return gone();
        throw err;
      }
    })
    .get("/task-row/:id", async (c) => {
      const id = c.req.param("id");
      const who = c.get("principal");
      if (!ID_RE.test(id)) return gone();
      const t = await deps.store.get(keys.task(id), Task);
      if (!t || !canSee(who, t.value.owner)) return gone();
      return c.html(<TaskRow task={taskView(who, t.value)} />);
    });
}
