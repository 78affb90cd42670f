/**
 * Opening a web session: the LDAP password and a TOTP token of a directory
 * user become a signed session token in the `ucloud_session` cookie. One
 * implementation for `POST /v1/auth/session` (api/session_routes.ts) and
 * the login page (api/web/login.tsx): the same checks in the same order,
 * the same failure limiter, the same logs and cookie.
 *
 * @example
 * ```ts
 * const login = sessionLogin(options);
 * const r = await login(c, { name: "alice", password: "pw", token: "123456" });
 * if (r.ok) setSessionCookie(c, options, r.token);
 * ```
 */
import type { Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import type { Config } from "../core/config.ts";
import type { Directory } from "../core/ldap.ts";
import type { Logger } from "../core/log.ts";
import type { AuthLimiter } from "../core/rate_limit.ts";
import { TOKEN_RE, type TotpVerifier } from "../core/totp.ts";
import {
  type AuthFailureReason,
  type AuthFailures,
  countFailure,
} from "./auth_failures.ts";
import type { Principal } from "./env.ts";
import {
  type BearerClaims,
  type BearerTokens,
  SESSION_COOKIE,
} from "./tokens.ts";

/** What a login reads. */
export interface SessionLoginOptions {
  /** The `identity` configuration (whether the cookie is `Secure`). */
  config: Config["identity"];
  directory: Directory;
  verifier: TotpVerifier;
  limiter: AuthLimiter;
  /** The realm of directory users. */
  realm: string;
  /** The caller's address, for the limiter and the logs. */
  address: (c: Context) => string | undefined;
  sessions: BearerTokens;
  /** Where refused logins are counted (method `login`). */
  failures?: AuthFailures;
  log: Logger;
}

/** What a login is given. */
export interface LoginInput {
  name: string;
  password?: string;
  token?: string;
}

/** A login's outcome: the session, or why not (401, or 429 with a wait). */
export type LoginResult =
  | { ok: true; principal: Principal; token: string; claims: BearerClaims }
  | { ok: false; status: 401; message: string }
  | { ok: false; status: 429; retryAfterMs: number };

/** Checks a login; the caller sets the cookie (`setSessionCookie`). */
export type SessionLogin = (c: Context, input: LoginInput) => Promise<
  LoginResult
>;

/** What the web pages (api/web/) need of identity: login and sessions. */
export type WebAuth = Pick<SessionLoginOptions, "config" | "sessions"> & {
  login: SessionLogin;
};

/** The message of every refused login: it tells nothing of which part. */
export const LOGIN_REFUSED = "Invalid name, password or token";

/**
 * Builds the login check. Throws UnavailableError (503) when LDAP is down.
 * The password is checked before the token, so a wrong password does not
 * use up the token.
 */
export function sessionLogin(o: SessionLoginOptions): SessionLogin {
  const { directory, verifier, limiter, realm, sessions, failures, log } = o;
  return async (c, { name, password = "", token = "" }) => {
    const addr = o.address(c);
    const attempt = { name: `${name}@${realm}`, address: addr };
    const wait = limiter.retryAfterMs(attempt);
    if (wait > 0) {
      countFailure(failures, "login", "locked_out");
      return { ok: false, status: 429, retryAfterMs: wait };
    }
    const refuse = (reason: AuthFailureReason): LoginResult => {
      limiter.fail(attempt);
      countFailure(failures, "login", reason);
      log.warn("session refused", { name, realm, address: addr, reason });
      return { ok: false, status: 401, message: LOGIN_REFUSED };
    };
    if (!TOKEN_RE.test(token)) return refuse("malformed");
    if (!await directory.checkPassword(name, password)) {
      return refuse("password");
    }
    const user = await directory.lookup(name);
    if (!user) return refuse("unknown");
    const r = await verifier.verify({ name, realm, token }, {
      signal: c.req.raw.signal,
    });
    if (!r.ok) return refuse(r.reason);
    limiter.succeed(attempt);
    const principal = { name: user.name, admin: user.admin };
    const issued = await sessions.issue(principal);
    log.info("session opened", { name, realm, address: addr });
    return { ok: true, principal, ...issued };
  };
}

/** Sets the session cookie: HttpOnly, SameSite=Strict, path `/`. */
export function setSessionCookie(
  c: Context,
  o: Pick<SessionLoginOptions, "config" | "sessions">,
  token: string,
): void {
  setCookie(c, SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: "Strict",
    path: "/",
    maxAge: o.sessions.ttlSeconds,
    secure: o.config.sessionCookieSecure,
  });
  c.header("Cache-Control", "no-store");
}

/** Clears the session cookie. */
export function clearSessionCookie(
  c: Context,
  o: Pick<SessionLoginOptions, "config">,
): void {
  deleteCookie(c, SESSION_COOKIE, {
    path: "/",
    secure: o.config.sessionCookieSecure,
  });
}
