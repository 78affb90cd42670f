/**
 * The caller's own identity routes of `/v1/auth`: `GET /whoami`,
 * `POST /session` (LDAP password plus TOTP → the `ucloud_session` cookie, a
 * signed session token), `DELETE /session` (revokes and clears it) and
 * `POST /revoke` (the caller's bearer token or session, or for admins any
 * token id).
 *
 * @example
 * ```ts
 * const routes = authRoutes({ bearer });
 * whoamiRoute(routes);
 * sessionRoutes(routes, options);
 * ```
 */
import type { Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Config } from "../core/config.ts";
import { InvalidError } from "../core/errors.ts";
import type { Directory } from "../core/ldap.ts";
import type { Logger } from "../core/log.ts";
import type { AuthLimiter } from "../core/rate_limit.ts";
import { NAME_RE, TOKEN_RE, type TotpVerifier } from "../core/totp.ts";
import { authMethod, currentToken } from "./auth.ts";
import {
  type AuthFailureReason,
  type AuthFailures,
  countFailure,
} from "./auth_failures.ts";
import { type AppEnv, requireAdmin } from "./env.ts";
import { errorJson, errorResponses, tooManyAttempts } from "./errors.ts";
import { type BearerTokens, SESSION_COOKIE } from "./tokens.ts";

/** What the session routes use. */
export interface SessionRouteOptions {
  /** The `identity` configuration (whether the cookie is `Secure`). */
  config: Config["identity"];
  directory: Directory;
  verifier: TotpVerifier;
  limiter: AuthLimiter;
  /** The realm of directory users. */
  realm: string;
  /** The caller's address, for the limiter and the logs. */
  address: (c: Context) => string | undefined;
  bearer: BearerTokens;
  sessions: BearerTokens;
  /** Where refused logins are counted (method `login`). */
  failures?: AuthFailures;
  log: Logger;
}

const Whoami = z.object({
  name: z.string(),
  admin: z.boolean(),
  method: z.enum(["totp", "bearer", "session"]).optional(),
}).openapi("Whoami");

const SessionRequest = z.object({
  name: z.string().regex(NAME_RE, "name must be a user name").openapi({
    example: "alice",
  }),
  /** The LDAP password; without it the answer is 401. */
  password: z.string().max(1024).optional(),
  /** The current TOTP token of the user's seed; without it the answer is 401. */
  token: z.string().max(16).optional(),
}).openapi("SessionRequest");

const SessionAnswer = z.object({
  name: z.string(),
  admin: z.boolean(),
  expiresAt: z.string(),
  expiresIn: z.number().int(),
}).openapi("SessionAnswer");

const Revoked = z.object({ revoked: z.boolean() }).openapi("Revoked");

const RevokeRequest = z.object({
  /** Admins only: the id of any bearer or session token to revoke. */
  jti: z.string().regex(/^[0-9a-f-]{36}$/, "jti must be a token id")
    .optional(),
}).openapi("RevokeRequest");

const createSession = createRoute({
  method: "post",
  path: "/session",
  summary:
    "Log in to the web page with the LDAP password and a TOTP token: sets the ucloud_session cookie",
  request: {
    body: {
      required: true,
      content: { "application/json": { schema: SessionRequest } },
    },
  },
  responses: {
    200: {
      description: "The session; its token is in the ucloud_session cookie",
      content: { "application/json": { schema: SessionAnswer } },
    },
    ...errorResponses(400, 401, 429, 503),
  },
});

const endSession = createRoute({
  method: "delete",
  path: "/session",
  summary: "Log out: revoke the session cookie and clear it",
  responses: {
    200: {
      description: "Whether a session was revoked",
      content: { "application/json": { schema: Revoked } },
    },
    ...errorResponses(401, 503),
  },
});

const revokeToken = createRoute({
  method: "post",
  path: "/revoke",
  summary:
    "Revoke the caller's bearer token or session, or (admins) the token with id jti",
  request: {
    body: {
      required: false,
      content: { "application/json": { schema: RevokeRequest } },
    },
  },
  responses: {
    200: {
      description: "The token is refused from now on",
      content: { "application/json": { schema: Revoked } },
    },
    ...errorResponses(400, 401, 403, 503),
  },
});

const whoami = createRoute({
  method: "get",
  path: "/whoami",
  summary: "Who the caller is",
  responses: {
    200: {
      description: "The caller's principal",
      content: { "application/json": { schema: Whoami } },
    },
    ...errorResponses(401),
  },
});

/**
 * Adds `GET /whoami` to `r` and returns it: the caller's principal and how
 * it authenticated (no method without identity).
 */
export function whoamiRoute(r: OpenAPIHono<AppEnv>): OpenAPIHono<AppEnv> {
  return r.openapi(whoami, (c) => {
    const p = c.get("principal");
    return c.json({ ...p, method: authMethod(c) }, 200);
  });
}

/** Adds `POST /session`, `DELETE /session` and `POST /revoke`. */
export function sessionRoutes(
  r: OpenAPIHono<AppEnv>,
  o: SessionRouteOptions,
): void {
  const {
    directory,
    verifier,
    limiter,
    realm,
    address: remoteAddr,
    bearer,
    sessions,
    failures,
    log,
    config: id,
  } = o;
  r.openapi(createSession, async (c) => {
    const { name, password = "", token = "" } = c.req.valid("json");
    const addr = remoteAddr(c);
    const attempt = { name: `${name}@${realm}`, address: addr };
    const wait = limiter.retryAfterMs(attempt);
    if (wait > 0) {
      countFailure(failures, "login", "locked_out");
      return tooManyAttempts(c, wait) as never;
    }
    const refuse = (reason: AuthFailureReason) => {
      limiter.fail(attempt);
      countFailure(failures, "login", reason);
      log.warn("session refused", { name, realm, address: addr, reason });
      return errorJson(c, 401, "Invalid name, password or token") as never;
    };
    if (!TOKEN_RE.test(token)) return refuse("malformed");
    // Throws UnavailableError (503) when LDAP is down; "" is refused.
    if (!await directory.checkPassword(name, password)) {
      return refuse("password");
    }
    const user = await directory.lookup(name);
    if (!user) return refuse("unknown");
    // Checked last: a wrong password must not use up the token.
    const r = await verifier.verify({ name, realm, token }, {
      signal: c.req.raw.signal,
    });
    if (!r.ok) return refuse(r.reason);
    limiter.succeed(attempt);
    const principal = { name: user.name, admin: user.admin };
    const { token: session, claims } = await sessions.issue(principal);
    setCookie(c, SESSION_COOKIE, session, {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      maxAge: sessions.ttlSeconds,
      secure: id.sessionCookieSecure,
    });
    c.header("Cache-Control", "no-store");
    log.info("session opened", { name, realm, address: addr });
    return c.json({
      ...principal,
      expiresAt: new Date(claims.exp * 1000).toISOString(),
      expiresIn: claims.exp - claims.iat,
    }, 200);
  });
  r.openapi(endSession, async (c) => {
    const claims = currentToken(c);
    let revoked = false;
    if (authMethod(c) === "session" && claims) {
      await sessions.revokeId(claims.jti);
      revoked = true;
    }
    deleteCookie(c, SESSION_COOKIE, {
      path: "/",
      secure: id.sessionCookieSecure,
    });
    return c.json({ revoked }, 200);
  });
  r.openapi(revokeToken, async (c) => {
    const p = c.get("principal");
    const type = c.req.header("content-type") ?? "";
    const body = /^application\/json\b/i.test(type) ? c.req.valid("json") : {};
    if (body.jti !== undefined) {
      requireAdmin(p, "revoke another token");
      // Either issuer: the longer lifetime covers both kinds.
      const longer = sessions.ttlSeconds > bearer.ttlSeconds
        ? sessions
        : bearer;
      await longer.revokeId(body.jti);
      log.info("token revoked", { by: p.name, jti: body.jti });
      return c.json({ revoked: true }, 200);
    }
    const method = authMethod(c);
    const claims = currentToken(c);
    if (!claims || (method !== "bearer" && method !== "session")) {
      throw new InvalidError(
        "jti",
        "Nothing to revoke: authenticate with the bearer token or session to revoke, or (admins) send jti",
      );
    }
    await (method === "session" ? sessions : bearer).revokeId(claims.jti);
    if (method === "session") {
      deleteCookie(c, SESSION_COOKIE, {
        path: "/",
        secure: id.sessionCookieSecure,
      });
    }
    log.info("token revoked", { by: p.name, jti: claims.jti });
    return c.json({ revoked: true }, 200);
  });
}
