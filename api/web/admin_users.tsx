/**
 * `/web/admin/users` (admins): the users with usage or quota documents
 * (resources/quotas `listQuotaUsers`), each with used and allowed per
 * resource, and `/web/admin/users/{name}`: one user's quota with a form
 * that sets it as `PUT /v1/users/{name}/quota` and `ucloud quota set` do
 * (the same schema, `QuotaLimits`, and `setQuota`): each field a whole
 * number (0: none allowed), `unlimited`, or blank for the config default.
 * A refused value shows the API's message on its field; nothing is
 * written then.
 *
 * @example
 * ```ts
 * admin.route("/users", userPages(w));
 * ```
 */
import { type Context, Hono } from "hono";
import { InvalidError } from "../../core/errors.ts";
import { QuotaLimits, type Usage } from "../../core/quota_schemas.ts";
import { NAME_RE } from "../../core/totp_token.ts";
import {
  limitsOf,
  listQuotaUsers,
  type QuotaView,
  setQuota,
  showQuota,
} from "../../resources/quotas/mod.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import {
  Csrf,
  ErrorBanner,
  Field,
  Notice,
  type Problem,
  problemOf,
  textOf,
} from "./form.tsx";
import { Layout, pageCtx } from "./layout.tsx";

/** Users shown on one page. */
export const USERS_PER_PAGE = 50;

/** The resources in the order shown, with their label. */
const RESOURCES: [keyof Usage, string][] = [
  ["vms", "VMs"],
  ["cpus", "Cores"],
  ["memoryMiB", "Memory (MiB)"],
  ["diskMiB", "Local disk (MiB)"],
  ["networks", "Networks"],
];

const limitText = (l: number | null) => l === null ? "unlimited" : String(l);

/** A field's value as the API takes it: blank absent, a number, null. */
function valueOf(text: string): number | null | string | undefined {
  const v = text.trim();
  if (v === "") return undefined;
  if (v === "unlimited") return null;
  // Anything else is left to the schema, which names what it wants.
  return /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
}

function limitsInput(form: FormData): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [r] of RESOURCES) {
    const v = valueOf(textOf(form, r));
    if (v !== undefined) out[r] = v;
  }
  return out;
}

function nameOf(c: Context<WebEnv>): string {
  const name = c.req.param("name") ?? "";
  if (!NAME_RE.test(name)) throw new InvalidError("name", "not a user name");
  return name;
}

function Used({ q, r }: { q: QuotaView; r: keyof Usage }) {
  return (
    <td data-field={r}>
      {q.usage[r]} / {limitText(q.limits[r])}{" "}
      {q.own[r] !== undefined && <span class="hint">(set)</span>}
    </td>
  );
}

async function listPage(w: WebDeps, c: Context<WebEnv>, problem?: Problem) {
  const after = c.req.query("after");
  const page = await listQuotaUsers(w.deps, c.get("principal"), {
    limit: USERS_PER_PAGE,
    after: after && NAME_RE.test(after) ? after : undefined,
  });
  return c.html(
    <Layout title="Users and quotas" ctx={pageCtx(c)}>
      <ErrorBanner problem={problem} />
      <p>
        The users who hold something or have their own limits; each cell is used
        / allowed. Others have the default limits.
      </p>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Users with usage and limits</caption>
          <thead>
            <tr>
              <th scope="col">User</th>
              {RESOURCES.map(([r, label]) => (
                <th key={r} scope="col">{label}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {page.items.map((q) => (
              <tr key={q.user} data-user={q.user}>
                <th scope="row">
                  <a href={`/web/admin/users/${q.user}`}>{q.user}</a>
                </th>
                {RESOURCES.map(([r]) => <Used key={r} q={q} r={r} />)}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {page.items.length === 0 && <p class="empty">No user holds anything.</p>}
      {page.next && (
        <p>
          <a href={`/web/admin/users?after=${encodeURIComponent(page.next)}`}>
            Next page
          </a>
        </p>
      )}
      <h2>Another user's quota</h2>
      <form method="get" action="/web/admin/users" class="narrow">
        <Field label="User name" name="name" problem={problem} required />
        <button type="submit">Open</button>
      </form>
    </Layout>,
    problem?.status ?? 200,
  );
}

async function userPage(
  w: WebDeps,
  c: Context<WebEnv>,
  name: string,
  sent?: FormData,
  problem?: Problem,
) {
  const q = await showQuota(w.deps, c.get("principal"), name);
  const defaults = limitsOf(w.deps.config.quota, {});
  const value = (r: keyof Usage) =>
    sent
      ? textOf(sent, r)
      : q.own[r] === undefined
      ? ""
      : limitText(q.own[r] ?? null);
  return c.html(
    <Layout title={`Quota of ${name}`} ctx={pageCtx(c)}>
      <Notice
        text={c.req.query("done") === "quota-set" ? "Quota set." : undefined}
      />
      <ErrorBanner problem={problem} />
      <div class="table-wrap">
        <table>
          <caption class="sr-only">{`Usage and limits of ${name}`}</caption>
          <thead>
            <tr>
              <th scope="col">Resource</th>
              <th scope="col">Used</th>
              <th scope="col">Allowed</th>
              <th scope="col">From</th>
            </tr>
          </thead>
          <tbody>
            {RESOURCES.map(([r, label]) => (
              <tr key={r} data-resource={r}>
                <th scope="row">{label}</th>
                <td data-field="used">{q.usage[r]}</td>
                <td data-field="limit">{limitText(q.limits[r])}</td>
                <td data-field="from">
                  {q.own[r] === undefined ? "default" : "set for the user"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Set the limits</h2>
      <p>
        Each limit is a whole number (0: none allowed), unlimited, or blank for
        the default. Setting replaces what was set for the user.
      </p>
      <form
        method="post"
        action={`/web/admin/users/${name}/quota`}
        class="narrow"
      >
        <Csrf token={c.get("csrf")} />
        {RESOURCES.map(([r, label]) => (
          <Field
            key={r}
            label={label}
            name={r}
            value={value(r)}
            problem={problem}
            inputmode="numeric"
            hint={`Default: ${limitText(defaults[r])}.`}
          />
        ))}
        <button type="submit">Set quota</button>
      </form>
      <p>
        <a href="/web/admin/users">All users</a>
      </p>
    </Layout>,
    problem?.status ?? 200,
  );
}

/** The users pages and the quota form. */
export function userPages(w: WebDeps): Hono<WebEnv> {
  return new Hono<WebEnv>()
    .get("/", (c) => {
      // The "another user" form: a user name to open.
      const name = c.req.query("name")?.trim();
      if (name === undefined) return listPage(w, c);
      if (!NAME_RE.test(name)) {
        return listPage(w, c, {
          status: 400,
          message: "name must be a user name",
          field: "name",
        });
      }
      return c.redirect(`/web/admin/users/${name}`, 303);
    })
    .get("/:name", (c) => userPage(w, c, nameOf(c)))
    .post("/:name/quota", async (c) => {
      const name = nameOf(c);
      const form = await c.req.formData();
      try {
        const limits = QuotaLimits.parse(limitsInput(form));
        await setQuota(w.deps, c.get("principal"), name, limits);
      } catch (err) {
        const p = problemOf(err);
        if (!p || p.status === 403) throw err;
        return await userPage(w, c, name, form, p);
      }
      return c.redirect(`/web/admin/users/${name}?done=quota-set`, 303);
    });
}
