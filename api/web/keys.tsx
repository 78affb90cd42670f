/**
 * `/web/keys`: the user's SSH public keys, a form to add one and a delete
 * button on each, calling the same resource functions as `/v1/keys`
 * (resources/keys/: the OpenSSH line checks) after the same input schema.
 * A refusal shows the page again with the API's status and message.
 *
 * @example
 * ```ts
 * pages.route("/keys", keyPages(w));
 * ```
 */
import { type Context, Hono } from "hono";
import { SshKeyCreateInput } from "../../core/image_schemas.ts";
import { NAME_RE } from "../../core/schemas.ts";
import { NotFoundError } from "../../core/errors.ts";
import * as res from "../../resources/keys/mod.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import {
  Csrf,
  ErrorBanner,
  Field,
  isFieldOf,
  Notice,
  noticeOf,
  type Problem,
  problemOf,
  textOf,
} from "./form.tsx";
import { Layout, pageCtx } from "./layout.tsx";
import { PostButton } from "./vm_detail.tsx";

async function page(
  c: Context<WebEnv>,
  { deps }: WebDeps,
  v = { name: "", publicKey: "" },
  problem?: Problem,
) {
  const who = c.get("principal");
  const items = await res.listKeys(deps.store, who);
  const csrf = c.get("csrf");
  const keyBad = isFieldOf(problem, "publicKey");
  return c.html(
    <Layout title="SSH keys" ctx={pageCtx(c)}>
      <Notice text={noticeOf(c.req.query("done"))} />
      <ErrorBanner problem={problem} />
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Your SSH keys</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Fingerprint</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((k) => (
              <tr key={k.name}>
                <th scope="row">{k.name}</th>
                <td>{k.type}</td>
                <td>
                  <code class="wrap">{k.fingerprint}</code>
                </td>
                <td>
                  <PostButton
                    action={`/web/keys/${k.name}/delete`}
                    csrf={csrf}
                    label={`Delete ${k.name}`}
                    secondary
                    confirm={`Delete SSH key ${k.name}?`}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {items.length === 0 && <p class="empty">No SSH keys yet.</p>}
      <h2>Add a key</h2>
      <form method="post" action="/web/keys" class="narrow">
        <Csrf token={csrf} />
        <Field
          label="Name"
          name="name"
          value={v.name}
          problem={problem}
          required
        />
        <div class={keyBad ? "field invalid" : "field"}>
          <label for="f-publicKey">Public key</label>
          <textarea
            id="f-publicKey"
            name="publicKey"
            rows={4}
            required
            spellcheck={false}
            aria-invalid={keyBad ? "true" : undefined}
            aria-describedby="f-publicKey-hint"
          >
            {v.publicKey}
          </textarea>
          <p class="hint" id="f-publicKey-hint">
            One line as in ~/.ssh/id_ed25519.pub: type, key, comment.
          </p>
          {keyBad && <p class="field-error">{problem!.message}</p>}
        </div>
        <button type="submit">Add key</button>
      </form>
    </Layout>,
    problem?.status ?? 200,
  );
}

/** The SSH key pages. */
export function keyPages(w: WebDeps): Hono<WebEnv> {
  return new Hono<WebEnv>()
    .get("/", (c) => page(c, w))
    .post("/", async (c) => {
      const form = await c.req.formData();
      const v = {
        name: textOf(form, "name").trim(),
        publicKey: textOf(form, "publicKey").trim(),
      };
      try {
        const input = SshKeyCreateInput.parse(v);
        await res.createKey(w.deps.store, c.get("principal"), input);
      } catch (err) {
        const p = problemOf(err);
        if (!p) throw err;
        return page(c, w, v, p);
      }
      return c.redirect("/web/keys?done=key-added", 303);
    })
    .post("/:name/delete", async (c) => {
      const name = c.req.param("name");
      if (!NAME_RE.test(name)) {
        throw new NotFoundError("key", name.slice(0, 64));
      }
      await res.deleteKey(w.deps.store, c.get("principal"), name);
      return c.redirect("/web/keys?done=key-deleted", 303);
    });
}
