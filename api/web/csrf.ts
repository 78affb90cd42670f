/**
 * CSRF protection of the web pages, on top of the SameSite=Strict session
 * cookie: every form carries a token (field `_csrf`) that only ucloud can
 * make, an HMAC of the session's id with the session issuer's key
 * (`BearerTokens.tag`), and every POST under `/web/` must bring the token
 * of its session or is refused with 403 before anything runs. The login
 * form, which has no session yet, is bound the same way to a random
 * pre-login cookie (`ucloud_login`).
 *
 * @example
 * ```ts
 * web.use("*", webSession(auth), csrf(auth));
 * <input type="hidden" name="_csrf" value={c.get("csrf")} />
 * ```
 */
import type { Context, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { WebAuth } from "../session_login.ts";
import type { WebEnv } from "./env.ts";

/** The form field of the token. */
export const CSRF_FIELD = "_csrf";
/** The cookie that binds the login form. */
export const LOGIN_COOKIE = "ucloud_login";

const encoder = new TextEncoder();

/** Compares in time independent of where the strings differ. */
function same(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  if (x.length !== y.length) return false;
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i] ^ y[i];
  return d === 0;
}

/** The CSRF token of the session with id `jti`. */
export function sessionToken(auth: WebAuth, jti: string): Promise<string> {
  return auth.sessions.tag(`csrf:session:${jti}`);
}

/** The token sent with a form, if any (the body is cached for the handler). */
async function sentToken(c: Context): Promise<string | undefined> {
  const type = c.req.header("content-type") ?? "";
  if (
    !/^(application\/x-www-form-urlencoded|multipart\/form-data)\b/i.test(type)
  ) return undefined;
  try {
    const v = (await c.req.formData()).get(CSRF_FIELD);
    return typeof v === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Answers 403: the form did not come from this session's page. */
export function refuseCsrf(c: Context): Response {
  return c.text(
    "Forbidden: the form's security token is missing or wrong. Reload the page and try again.",
    403,
  );
}

/**
 * Sets `csrf` for the pages and checks the token of every POST (after
 * `webSession`).
 */
export function csrf(auth: WebAuth): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    const want = await sessionToken(auth, c.get("session").jti);
    c.set("csrf", want);
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const got = await sentToken(c);
      if (got === undefined || !same(got, want)) return refuseCsrf(c);
    }
    return await next();
  };
}

/**
 * The login form's token: reads (or sets, with a new random value) the
 * pre-login cookie and returns the HMAC that binds a form to it.
 */
export async function loginToken(c: Context, auth: WebAuth): Promise<string> {
  let v = getCookie(c, LOGIN_COOKIE);
  if (v === undefined || !/^[0-9a-f-]{36}$/.test(v)) {
    v = crypto.randomUUID();
    setCookie(c, LOGIN_COOKIE, v, {
      httpOnly: true,
      sameSite: "Strict",
      path: "/web/",
      secure: auth.config.sessionCookieSecure,
    });
  }
  return await auth.sessions.tag(`csrf:login:${v}`);
}

/** True when a login POST brings the token of its pre-login cookie. */
export async function loginTokenOk(
  c: Context,
  auth: WebAuth,
): Promise<boolean> {
  const v = getCookie(c, LOGIN_COOKIE);
  const got = await sentToken(c);
  if (v === undefined || got === undefined) return false;
  return same(got, await auth.sessions.tag(`csrf:login:${v}`));
}
