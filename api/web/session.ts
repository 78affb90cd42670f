/**
 * The login of the web pages: `webSession` lets a request through only
 * with a valid `ucloud_session` cookie (the same signed session token as
 * the API's, checked by the same issuer: api/tokens.ts) and sets the
 * principal and the session's claims. Without one, a page is redirected
 * to `/web/login` (with `m=expired` when the cookie had expired or was
 * revoked, and the cookie cleared); a fragment, which a script fetches,
 * answers 401.
 *
 * @example
 * ```ts
 * web.use("*", webSession(auth));
 * web.get("/vms", (c) => c.text(c.get("principal").name));
 * ```
 */
import type { MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { clearSessionCookie, type WebAuth } from "../session_login.ts";
import { SESSION_COOKIE } from "../tokens.ts";
import type { WebEnv } from "./env.ts";

/** A path a login may send the user back to: a page under `/web/`. */
export const NEXT_RE = /^\/web\/[a-z0-9/_-]*$/;

/** Where a refused request goes: the login, saying why. */
export function loginUrl(reason?: "expired", next?: string): string {
  const q = new URLSearchParams();
  if (reason) q.set("m", reason);
  if (next && NEXT_RE.test(next) && next !== "/web/login") q.set("next", next);
  const s = q.toString();
  return s ? `/web/login?${s}` : "/web/login";
}

/** The middleware of every page behind the login. */
export function webSession(auth: WebAuth): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    const cookie = getCookie(c, SESSION_COOKIE);
    const r = cookie === undefined ? null : await auth.sessions.verify(cookie);
    if (r?.ok) {
      c.set("principal", r.principal);
      c.set("session", r.claims);
      return await next();
    }
    if (cookie !== undefined) clearSessionCookie(c, auth);
    if (c.req.path.startsWith("/web/fragments/")) {
      return c.text("Log in again", 401);
    }
    const next_ = c.req.method === "GET" ? c.req.path : undefined;
    return c.redirect(loginUrl(r ? "expired" : undefined, next_), 303);
  };
}
