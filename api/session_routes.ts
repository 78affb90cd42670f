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
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { InvalidError } from "../core/errors.ts";
import { NAME_RE } from "../core/totp.ts";
import { authMethod, currentToken } from "./auth.ts";
import { type AppEnv, requireAdmin } from "./env.ts";
import { errorJson, errorResponses, tooManyAttempts } from "./errors.ts";
import {
  clearSessionCookie,
  sessionLogin,
  type SessionLoginOptions,
  setSessionCookie,
} from "./session_login.ts";
import type { BearerTokens } from "./tokens.ts";

/** What the session routes use: the login's, and the bearer issuer. */
export interface SessionRouteOptions extends SessionLoginOptions {
  bearer: BearerTokens;
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
  const { bearer, sessions, log } = o;
  const login = sessionLogin(o);
  r.openapi(createSession, async (c) => {
    const got = await login(c, c.req.valid("json"));
    if (!got.ok) {
      return (got.status === 429
        ? tooManyAttempts(c, got.retryAfterMs)
        : errorJson(c, 401, got.message)) as never;
    }
    setSessionCookie(c, o, got.token);
    return c.json({
      ...got.principal,
      expiresAt: new Date(got.claims.exp * 1000).toISOString(),
      expiresIn: got.claims.exp - got.claims.iat,
    }, 200);
  });
  r.openapi(endSession, async (c) => {
    const claims = currentToken(c);
    let revoked = false;
    if (authMethod(c) === "session" && claims) {
      await sessions.revokeId(claims.jti);
      revoked = true;
    }
    clearSessionCookie(c, o);
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
    if (method === "session") clearSessionCookie(c, o);
    log.info("token revoked", { by: p.name, jti: claims.jti });
    return c.json({ revoked: true }, 200);
  });
}
