/**
 * The console page `GET /web/console/{id}` and its assets: our script
 * (api/console_page.js) and style, and noVNC's ES modules served from the
 * pinned npm package (`@novnc/novnc` in deno.json) under
 * `/web/assets/novnc/` (no CDN). The page is a shell without data of the
 * VM (its script asks for a ticket, api/console.ts, or takes the one in
 * the URL's fragment), under the /web content security policy: no inline
 * script or style; `connect-src 'self'` covers the same-origin websocket.
 *
 * @example
 * ```ts
 * app.route("/web", consolePages());
 * ```
 */
import { type Context, Hono } from "hono";
import { ID_RE } from "../core/schemas.ts";

/** The content security policy of /web pages (wt-web's middleware sets it too). */
export const WEB_CSP = "default-src 'self'; script-src 'self'; " +
  "style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const HERE = new URL(".", import.meta.url);
/** noVNC's package directory (its `core/` and `vendor/` are served). */
const NOVNC = new URL("../", import.meta.resolve("@novnc/novnc"));
const NOVNC_PATH = /^(core|vendor)\/[A-Za-z0-9_./-]+\.js$/;

const escape = (s: string) =>
  s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

function page(id: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Console of ${escape(id)} · ucloud</title>
<link rel="stylesheet" href="/web/assets/console.css">
<script type="module" src="/web/assets/console.js"></script>
</head>
<body data-vm="${escape(id)}" data-state="loading">
<header>
<h1>Console of <code>${escape(id)}</code></h1>
<p id="console-status" role="status" aria-live="polite">Loading…</p>
<button id="console-cad" type="button" disabled>Send Ctrl-Alt-Del</button>
<button id="console-reconnect" type="button" hidden>Reconnect</button>
</header>
<main id="console-screen" aria-label="Screen of ${escape(id)}"></main>
</body>
</html>
`;
}

/** Files read once and kept (only files that exist: a bounded set). */
const files = new Map<string, string>();

async function readAsset(url: URL): Promise<string | null> {
  const kept = files.get(url.href);
  if (kept !== undefined) return kept;
  try {
    const text = await Deno.readTextFile(url);
    files.set(url.href, text);
    return text;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** The console page and its assets, mounted at `/web`. */
export function consolePages(): Hono {
  const app = new Hono();
  app.get("/console/:id", (c) => {
    const id = c.req.param("id");
    if (!ID_RE.test(id)) return c.text("Invalid VM id", 400);
    c.header("Content-Security-Policy", WEB_CSP);
    c.header("Cache-Control", "no-store");
    c.header("Referrer-Policy", "no-referrer");
    return c.html(page(id));
  });
  const serve = async (c: Context, url: URL, type: string) => {
    const text = await readAsset(url);
    if (text === null) return c.notFound();
    return c.body(text, 200, {
      "Content-Type": `${type}; charset=utf-8`,
      "Cache-Control": "public, max-age=3600",
      "X-Content-Type-Options": "nosniff",
    });
  };
  app.get(
    "/assets/console.js",
    (c) => serve(c, new URL("console_page.js", HERE), "text/javascript"),
  );
  app.get(
    "/assets/console.css",
    (c) => serve(c, new URL("console_page.css", HERE), "text/css"),
  );
  app.get("/assets/novnc/*", (c) => {
    const path = c.req.path.replace(/^.*?\/assets\/novnc\//, "");
    if (!NOVNC_PATH.test(path) || path.split("/").includes("..")) {
      return c.notFound();
    }
    return serve(c, new URL(path, NOVNC), "text/javascript");
  });
  return app;
}
