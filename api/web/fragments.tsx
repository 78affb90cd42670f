/**
 * `GET /web/fragments/vm-row/{id}` and `/web/fragments/task-row/{id}`:
 * exactly one table row (api/web/vm_rows.tsx) of a VM or task the user may
 * see, for live.js to put in place of the old one; 404 with an empty body
 * for one they may not see or that is gone. `/web/fragments/vm-state/{id}`:
 * the state part of the VM page (api/web/vm_detail.tsx `VmState`).
 *
 * @example
 * ```ts
 * pages.route("/fragments", fragments(w));
 * ```
 */
import { type Context, Hono } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import { keys } from "../../core/keys.ts";
import { ID_RE, Task, type Vm } from "../../core/schemas.ts";
import { NotFoundError } from "../../core/errors.ts";
import { canSee } from "../../resources/deps.ts";
import { taskView, vmView } from "../../resources/host_internals.ts";
import { showVm } from "../../resources/vms/mod.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import { VmState } from "./vm_detail.tsx";
import { TaskRow, VmRow } from "./vm_rows.tsx";

const gone = () => new Response(null, { status: 404 });

/** The fragment routes. */
export function fragments({ deps }: WebDeps): Hono<WebEnv> {
  /** Renders VM `:id` as the user may see it with `render`. */
  const vmFragment = async (
    c: Context<WebEnv>,
    render: (vm: Vm) => JSX.Element,
  ) => {
    const id = c.req.param("id");
    const who = c.get("principal");
    if (!id || !ID_RE.test(id)) return gone();
    try {
      return c.html(render(vmView(who, await showVm(deps.store, who, id))));
    } catch (err) {
      if (err instanceof NotFoundError) return gone();
      throw err;
    }
  };
  return new Hono<WebEnv>()
    .get("/vm-row/:id", (c) => vmFragment(c, (vm) => <VmRow vm={vm} />))
    .get("/vm-state/:id", (c) =>
      vmFragment(c, (vm) => (
        <VmState
          vm={vm}
          admin={c.get("principal").admin}
          csrf={c.get("csrf")}
        />
      )))
    .get("/task-row/:id", async (c) => {
      const id = c.req.param("id");
      const who = c.get("principal");
      if (!ID_RE.test(id)) return gone();
      const t = await deps.store.get(keys.task(id), Task);
      if (!t || !canSee(who, t.value.owner)) return gone();
      return c.html(<TaskRow task={taskView(who, t.value)} />);
    });
}
