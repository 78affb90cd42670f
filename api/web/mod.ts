/**
 * The web pages, served by the API process under `/web/`: server-rendered
 * with hono/jsx, every asset from api/web/assets/, the CSP and security
 * headers on every answer (headers.ts). `/web/login` and `/web/assets/`
 * are public; every other page needs the web session (session.ts) and
 * every POST its CSRF token (csrf.ts). The pages call the same resource
 * modules (resources/) as the API routes.
 *
 * @example
 * ```ts
 * app.route("/web", webApp({ deps: { store, config }, auth, log }));
 * ```
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { MAX_USER_DATA_BYTES } from "../../core/schemas.ts";
import { adminPages } from "./admin.ts";
import { assets } from "./assets.ts";
import { csrf } from "./csrf.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import { errorPage, webError, webNotFound } from "./errors.tsx";
import { fragments } from "./fragments.tsx";
import { imagePages } from "./images.tsx";
import { keyPages } from "./keys.tsx";
import { loginPages, logout } from "./login.tsx";
import { networkPages } from "./networks.tsx";
import { securityHeaders } from "./headers.ts";
import { taskPages } from "./tasks.tsx";
import { webSession } from "./session.ts";
import { vmPages } from "./vm_pages.ts";

/**
 * The largest form accepted: the user data (64 KiB) even when every byte
 * is sent as `%XX`, and room for the other fields.
 */
export const WEB_BODY_BYTES = 3 * MAX_USER_DATA_BYTES + 16 * 1024;

/** Builds the `/web` sub-app (reads the assets folder once). */
export function webApp(w: WebDeps): Hono<WebEnv> {
  const web = new Hono<WebEnv>();
  web.onError(webError(w.log));
  web.use(
    "*",
    securityHeaders(),
    bodyLimit({
      maxSize: WEB_BODY_BYTES,
      onError: (c) =>
        errorPage(c, 400, `The form is larger than ${WEB_BODY_BYTES} bytes.`),
    }),
  );
  // Public: registered before the login middleware, so answered first.
  web.route("/assets", assets());
  web.route("/login", loginPages(w));
  // Everything below: a valid session, and the CSRF token on every POST.
  web.use("*", webSession(w.auth), csrf(w.auth));
  web.get("/", (c) => c.redirect("/web/vms", 303));
  web.post("/logout", logout(w));
  web.route("/vms", vmPages(w));
  web.route("/networks", networkPages(w));
  web.route("/keys", keyPages(w));
  web.route("/images", imagePages(w));
  web.route("/tasks", taskPages(w));
  web.route("/fragments", fragments(w));
  web.route("/admin", adminPages(w));
  // The API's own 404 would answer JSON: unknown pages get the web's.
  web.all(
    "*",
    (c) =>
      c.req.path === "/web/" ? c.redirect("/web/vms", 303) : webNotFound(c),
  );
  return web;
}
