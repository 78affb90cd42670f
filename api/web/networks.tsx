/**
 * `/web/networks`: the networks the user sees (their own and the public
 * ones; all for an admin), a form to create a private network and a
 * delete button on each of their own, calling the same resource functions
 * as `/v1/networks` (resources/networks/) after the same input schema. A
 * refusal shows the page again with the API's status and message.
 *
 * @example
 * ```ts
 * pages.route("/networks", networkPages(w));
 * ```
 */
import { type Context, Hono } from "hono";
import { ID_RE, NetworkCreateInput } from "../../core/schemas.ts";
import { NotFoundError } from "../../core/errors.ts";
import { canSee } from "../../resources/deps.ts";
import * as nets from "../../resources/networks/mod.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import {
  Csrf,
  ErrorBanner,
  Field,
  Notice,
  noticeOf,
  type Problem,
  problemOf,
  textOf,
} from "./form.tsx";
import { Layout, pageCtx } from "./layout.tsx";
import { PostButton } from "./vm_detail.tsx";

interface Values {
  name: string;
  ipv4: string;
  v6: boolean;
  v4: boolean;
}

function inputOf(form: FormData): unknown {
  const ipv4 = textOf(form, "ipv4").trim();
  const v6 = textOf(form, "dhcp6") === "1";
  const v4 = textOf(form, "dhcp4") === "1";
  return {
    name: textOf(form, "name").trim(),
    ...(ipv4 ? { ipv4 } : {}),
    ...(v6 || v4 ? { dhcp: { v6, v4 } } : {}),
  };
}

function Check(
  { name, label, checked }: { name: string; label: string; checked: boolean },
) {
  return (
    <div class="check">
      <input
        type="checkbox"
        id={`f-${name}`}
        name={name}
        value="1"
        checked={checked}
      />
      <label for={`f-${name}`}>{label}</label>
    </div>
  );
}

async function page(
  c: Context<WebEnv>,
  { deps }: WebDeps,
  v: Values = { name: "", ipv4: "", v6: false, v4: false },
  problem?: Problem,
) {
  const who = c.get("principal");
  const items = await nets.listNetworks(deps.store, who);
  const csrf = c.get("csrf");
  return c.html(
    <Layout title="Networks" ctx={pageCtx(c)}>
      <Notice text={noticeOf(c.req.query("done"))} />
      <ErrorBanner problem={problem} />
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Networks</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Prefixes</th>
              <th scope="col">VMs</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((n) => (
              <tr key={n.id}>
                <th scope="row">{n.name}</th>
                <td>{n.kind}</td>
                <td>
                  <code>{n.prefix}</code>
                  {n.ipv4 && <code>{n.ipv4}</code>}
                </td>
                <td>{n.vmCount ?? "–"}</td>
                <td>
                  {canSee(who, n.owner) && (
                    <PostButton
                      action={`/web/networks/${n.id}/delete`}
                      csrf={csrf}
                      label={`Delete ${n.name}`}
                      secondary
                      confirm={`Delete network ${n.name}?`}
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {items.length === 0 && <p class="empty">No networks yet.</p>}
      <h2>Create a private network</h2>
      <form method="post" action="/web/networks" class="narrow">
        <Csrf token={csrf} />
        <Field
          label="Name"
          name="name"
          value={v.name}
          problem={problem}
          required
        />
        <Field
          label="Legacy IPv4 subnet (optional)"
          name="ipv4"
          value={v.ipv4}
          problem={problem}
          hint="For example 10.0.0.0/24. The IPv6 /64 is chosen for you."
        />
        <fieldset>
          <legend>DHCP</legend>
          <Check name="dhcp6" label="DHCPv6" checked={v.v6} />
          <Check name="dhcp4" label="DHCPv4" checked={v.v4} />
        </fieldset>
        <button type="submit">Create network</button>
      </form>
    </Layout>,
    problem?.status ?? 200,
  );
}

/** The network pages. */
export function networkPages(w: WebDeps): Hono<WebEnv> {
  return new Hono<WebEnv>()
    .get("/", (c) => page(c, w))
    .post("/", async (c) => {
      const form = await c.req.formData();
      try {
        const input = NetworkCreateInput.parse(inputOf(form));
        await nets.createNetwork(w.deps, c.get("principal"), input);
      } catch (err) {
        const p = problemOf(err);
        if (!p) throw err;
        return page(c, w, {
          name: textOf(form, "name"),
          ipv4: textOf(form, "ipv4"),
          v6: textOf(form, "dhcp6") === "1",
          v4: textOf(form, "dhcp4") === "1",
        }, p);
      }
      return c.redirect("/web/networks?done=net-created", 303);
    })
    .post("/:id/delete", async (c) => {
      const id = c.req.param("id");
      if (!ID_RE.test(id)) throw new NotFoundError("network", id.slice(0, 64));
      try {
        await nets.deleteNetwork(w.deps.store, c.get("principal"), id);
      } catch (err) {
        const p = problemOf(err);
        if (!p || p.status === 404) throw err;
        return page(c, w, undefined, p);
      }
      return c.redirect("/web/networks?done=net-deleted", 303);
    });
}
