/**
 * The static files of the web pages (api/web/assets/: CSS and scripts),
 * read once when the app is built and served under `/web/assets/` with
 * their type. Nothing comes from elsewhere: the CSP allows only ucloud.
 *
 * @example
 * ```ts
 * web.route("/assets", assets());
 * ```
 */
import { Hono } from "hono";

const TYPES: Record<string, string> = {
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
};

/** A file name the assets folder may serve: no paths, a known type. */
const NAME_RE = /^[a-z0-9][a-z0-9_.-]*\.(css|js|svg|png)$/;

/** The default folder: api/web/assets/ beside this module. */
export const ASSETS_DIR = new URL("./assets/", import.meta.url);

/** Reads every asset of `dir` (once, now) and serves them. */
export function assets(dir: URL = ASSETS_DIR): Hono {
  const files = new Map<
    string,
    { body: Uint8Array<ArrayBuffer>; type: string }
  >();
  for (const e of Deno.readDirSync(dir)) {
    const m = NAME_RE.exec(e.name);
    if (!e.isFile || !m) continue;
    const body = Deno.readFileSync(new URL(e.name, dir));
    files.set(e.name, { body, type: TYPES[m[1]] });
  }
  return new Hono().get("/:name", (c) => {
    const f = files.get(c.req.param("name"));
    if (!f) return c.text("Not found", 404);
    return c.body(f.body, 200, {
      "Content-Type": f.type,
      // Short: a new ucloud version brings new files under the same names.
      "Cache-Control": "public, max-age=300",
    });
  });
}
