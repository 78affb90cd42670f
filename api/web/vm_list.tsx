/**
 * `GET /web/vms`: the user's VMs (every VM for an admin), oldest first, a
 * page at a time (resources/vms `listVms`, as `GET /v1/vms`), in a table
 * that live.js keeps up to date from `/v1/events`.
 *
 * @example
 * ```ts
 * vms.get("/", listPage(w));
 * ```
 */
import type { Handler } from "hono";
import { vmView } from "../../resources/host_internals.ts";
import { listVms } from "../../resources/vms/mod.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import { Notice, noticeOf } from "./form.tsx";
import { Layout, pageCtx } from "./layout.tsx";
import { VmRow } from "./vm_rows.tsx";

/** VMs shown on one page. */
export const VMS_PER_PAGE = 50;

/** The list page's handler. */
export function listPage({ deps }: WebDeps): Handler<WebEnv> {
  return async (c) => {
    const who = c.get("principal");
    const cont = c.req.query("continue");
    const page = await listVms(deps.store, who, {
      limit: VMS_PER_PAGE,
      continue: cont,
    });
    const vms = page.items.map((v) => vmView(who, v));
    return c.html(
      <Layout title="VMs" ctx={pageCtx(c)} scripts={["live.js"]}>
        <Notice text={noticeOf(c.req.query("done"))} />
        <p>
          <a class="button" href="/web/vms/new">Create a VM</a>
        </p>
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Your VMs</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">State</th>
                <th scope="col">Host</th>
                <th scope="col">Addresses</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody data-live-list="vms">
              {vms.map((v) => <VmRow key={v.id} vm={v} />)}
            </tbody>
          </table>
        </div>
        {/* Shown by the CSS only while the list has no row (live.js). */}
        {!cont && <p class="empty">You have no VMs yet.</p>}
        {page.continue && (
          <p>
            <a
              href={`/web/vms?continue=${encodeURIComponent(page.continue)}`}
            >
              Next page
            </a>
          </p>
        )}
      </Layout>,
    );
  };
}
