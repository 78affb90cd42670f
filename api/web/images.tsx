/**
 * `/web/images`: the images the user sees (their own and the published
 * ones; all for an admin, as `GET /v1/images`), a form to create one from
 * a URL, a delete button on each of their own, and the upload from the
 * browser: upload.js sends the file in chunks with `PUT
 * /v1/images/{name}/upload` (the API itself, resumable from the offset it
 * tells) and images.js refreshes the table while an import runs. The forms
 * call the same resource functions as `/v1/images` (resources/images/)
 * after the same input schema; a refusal shows the page again with the
 * API's status and message.
 *
 * @example
 * ```ts
 * pages.route("/images", imagePages(w));
 * ```
 */
import { type Context, Hono } from "hono";
import { NotFoundError } from "../../core/errors.ts";
import { ImageCreateInput } from "../../core/image_schemas.ts";
import { NAME_RE } from "../../core/schemas.ts";
import { imageView } from "../../resources/host_internals.ts";
import * as res from "../../resources/images/mod.ts";
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
import { type ImageItem, ImageTable, sizeText } from "./image_rows.tsx";
import { Layout, pageCtx } from "./layout.tsx";

/** What the page says after an action (`?done=`): fixed texts only. */
const NOTICES: Record<string, string> = {
  "image-fetching": "Image created: a host fetches it from the URL now.",
  "image-waiting":
    "Image created: it waits for its bytes. Upload them here with JavaScript on, or with ucloud image upload.",
  "image-deleted": "Image deleted.",
};

interface Values {
  name: string;
  url: string;
}

/** The images of the table, with the bytes of each upload received. */
async function itemsOf(
  { deps }: WebDeps,
  c: Context<WebEnv>,
): Promise<ImageItem[]> {
  const who = c.get("principal");
  const images = await res.listImages(deps.store, who);
  return await Promise.all(images.map(async (img) => {
    const image = imageView(who, img);
    if (img.state !== "uploading" || img.owner !== who.name) return { image };
    const up = await res.uploadOffset(deps, who, img.name).catch(() => null);
    return { image, received: up?.offset ?? 0 };
  }));
}

function UploadForm(
  { csrf, resume }: { csrf: string; resume?: ImageItem },
) {
  return (
    <section aria-labelledby="h-upload" id="upload">
      <h2 id="h-upload">Upload from this computer</h2>
      <form
        method="post"
        action="/web/images"
        class="narrow"
        id="upload-form"
        data-upload
      >
        <Csrf token={csrf} />
        <input type="hidden" name="source" value="upload" />
        <div class="field">
          <label for="up-name">Name</label>
          <input
            id="up-name"
            name="name"
            type="text"
            required
            pattern={NAME_RE.source}
            value={resume?.image.name}
            autocomplete="off"
            aria-describedby="up-name-hint"
          />
          <p class="hint" id="up-name-hint">
            Lowercase letters, digits and '-'. An upload of this name that broke
            off goes on where the server stopped.
          </p>
        </div>
        <div class="field">
          <label for="up-file">File (qcow2)</label>
          <input
            id="up-file"
            type="file"
            required
            aria-describedby="up-file-hint"
          />
          <p class="hint" id="up-file-hint">
            {resume
              ? `Choose the same file again: ${
                sizeText(resume.received ?? 0)
              } of it are received.`
              : "Sent in chunks; a reload or a broken connection loses at most one chunk."}
          </p>
        </div>
        <div class="upload-progress" data-upload-progress hidden>
          <label for="up-progress">Upload progress</label>
          <progress id="up-progress" max="100" value="0"></progress>
          <p id="up-status" role="status" data-upload-status></p>
        </div>
        <div class="error" role="alert" data-upload-error hidden>
          <p></p>
        </div>
        <div class="actions">
          <button type="submit">Upload</button>
          <button type="button" class="secondary" data-upload-retry hidden>
            Try again
          </button>
        </div>
      </form>
    </section>
  );
}

async function page(
  c: Context<WebEnv>,
  w: WebDeps,
  v: Values = { name: "", url: "" },
  problem?: Problem,
) {
  const who = c.get("principal");
  const items = await itemsOf(w, c);
  const csrf = c.get("csrf");
  const r = c.req.query("resume");
  const resume = items.find((i) =>
    i.image.name === r && i.image.owner === who.name &&
    i.image.state === "uploading"
  );
  const done = c.req.query("done");
  return c.html(
    <Layout
      title="Images"
      ctx={pageCtx(c)}
      scripts={["upload.js", "images.js"]}
    >
      <Notice text={done === undefined ? undefined : NOTICES[done]} />
      <ErrorBanner problem={problem} />
      <div data-image-table>
        <ImageTable items={items} who={who} csrf={csrf} />
        {items.length === 0 && <p class="empty">No images yet.</p>}
      </div>
      <UploadForm csrf={csrf} resume={resume} />
      <section aria-labelledby="h-url">
        <h2 id="h-url">Create from a URL</h2>
        <form method="post" action="/web/images" class="narrow">
          <Csrf token={csrf} />
          <Field
            label="Name"
            name="name"
            value={v.name}
            problem={problem}
            required
          />
          <Field
            label="URL"
            name="url"
            type="url"
            value={v.url}
            problem={problem}
            required
            hint="http or https; a host fetches it and imports it."
          />
          <button type="submit">Create from URL</button>
        </form>
      </section>
    </Layout>,
    problem?.status ?? 200,
  );
}

/** The image pages. */
export function imagePages(w: WebDeps): Hono<WebEnv> {
  return new Hono<WebEnv>()
    .get("/", (c) => page(c, w))
    .post("/", async (c) => {
      const form = await c.req.formData();
      const upload = textOf(form, "source") === "upload";
      const v = {
        name: textOf(form, "name").trim(),
        url: textOf(form, "url").trim(),
      };
      try {
        const input = ImageCreateInput.parse(
          upload ? { name: v.name } : { name: v.name, url: v.url },
        );
        await res.createImage(w.deps, c.get("principal"), input);
      } catch (err) {
        const p = problemOf(err);
        if (!p) throw err;
        // The upload form marks no field: the banner says it.
        return upload
          ? page(c, w, undefined, { ...p, field: undefined })
          : page(c, w, v, p);
      }
      const done = upload ? "image-waiting" : "image-fetching";
      return c.redirect(`/web/images?done=${done}`, 303);
    })
    .post("/:name/delete", async (c) => {
      const name = c.req.param("name");
      if (!NAME_RE.test(name)) {
        throw new NotFoundError("image", name.slice(0, 64));
      }
      const owner = textOf(await c.req.formData(), "owner") || undefined;
      if (owner !== undefined && !NAME_RE.test(owner)) {
        throw new NotFoundError("image", name);
      }
      try {
        await res.deleteImage(w.deps, c.get("principal"), name, owner);
      } catch (err) {
        const p = problemOf(err);
        if (!p || p.status === 404) throw err;
        return page(c, w, undefined, p);
      }
      return c.redirect("/web/images?done=image-deleted", 303);
    });
}
