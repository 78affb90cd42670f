/**
 * Builds API authentication from the `identity` configuration: the LDAP
 * directory, TOTP seeds encrypted in etcd (or an ungleich-otp server), the
 * replay store, bearer tokens with etcd revocations, the failure limiter and
 * the `totpAuth` middleware, plus the `/v1/auth` routes:
 *
 * - `POST /v1/auth/token`: TOTP credentials → a short-lived bearer token;
 * - `POST /v1/auth/seed`: LDAP name and password → a new TOTP seed for that
 *   user, returned in this one answer only (`replace: true` rotates it);
 * - `GET /v1/auth/whoami`: the caller's principal;
 * - `POST /v1/auth/session`: LDAP password plus TOTP → the `ucloud_session`
 *   cookie (a signed session token); `DELETE` revokes it and clears it;
 * - `POST /v1/auth/revoke`: revokes the caller's bearer token or session, or
 *   (admins) any token id;
 * - `POST /v1/auth/services` (admins): a service's seed in its own realm.
 *
 * @example
 * ```ts
 * const identity = await createIdentity({ store, config });
 * const app = createApp({ store, config, identity });
 * ```
 */
import type { MiddlewareHandler } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { createRoute, z } from "@hono/zod-openapi";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Config } from "../core/config.ts";
import { ConflictError, InvalidError } from "../core/errors.ts";
import { Directory } from "../core/ldap.ts";
import { type Logger, logger } from "../core/log.ts";
import { AuthLimiter } from "../core/rate_limit.ts";
import { type HostKeys, importHostKey, newHostKey } from "../core/secrets.ts";
import type { Store } from "../core/store.ts";
import {
  EtcdReplayStore,
  EtcdSeedStore,
  LocalVerifier,
  NAME_RE,
  TOKEN_RE,
  type TotpVerifier,
  UngleichOtpVerifier,
} from "../core/totp.ts";
import {
  authMethod,
  currentToken,
  forwardedAddress,
  totpAuth,
} from "./auth.ts";
import { authRoutes } from "./auth_routes.ts";
import { EtcdRevocationList } from "./revocations.ts";
import { BearerTokens, SESSION_COOKIE } from "./tokens.ts";
import { type AppEnv, requireAdmin } from "./env.ts";
import { errorJson, errorResponses } from "./errors.ts";

export type IdentitySettings = Pick<Config, "identity" | "stateDir"> & {
  /** `api.trustedProxies`: reverse proxies whose X-Forwarded-For is believed. */
  api?: { trustedProxies?: string[] };
};

export interface Identity {
  /** The middleware for `createApp`'s `auth` slot. */
  auth: MiddlewareHandler<AppEnv>;
  /** The `/v1/auth` sub-app. */
  routes: OpenAPIHono<AppEnv>;
  bearer: BearerTokens;
  /** Web session tokens (the `ucloud_session` cookie). */
  sessions: BearerTokens;
  directory: Directory;
  /** Null in ungleichotp mode (seeds are kept by the ungleich-otp server). */
  seeds: EtcdSeedStore | null;
}

/**
 * Reads the host key from `path`; creates it (mode 0600) when it does not
 * exist, so a single-node install needs no setup step.
 */
export async function loadHostKey(
  path: string,
  log: Logger = logger({ component: "identity" }),
): Promise<HostKeys> {
  try {
    return await importHostKey(await Deno.readTextFile(path));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new Error(`Cannot read identity key file ${path}: ${err}`);
    }
  }
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true });
  const text = newHostKey() + "\n";
  try {
    await Deno.writeTextFile(path, text, { createNew: true, mode: 0o600 });
    log.warn("created a new identity key file", { path });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  return await importHostKey(await Deno.readTextFile(path));
}

const SeedRequest = z.object({
  name: z.string().regex(NAME_RE, "name must be a user name").openapi({
    example: "alice",
  }),
  /** The LDAP password; without it the answer is 401. */
  password: z.string().max(1024).optional(),
  /** Rotate an existing seed (the old one stops working). */
  replace: z.boolean().default(false),
}).openapi("SeedRequest");

const SeedAnswer = z.object({
  name: z.string(),
  realm: z.string(),
  seed: z.string().openapi({ example: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" }),
  otpauthUri: z.string(),
}).openapi("SeedAnswer");

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

const ServiceSeedRequest = z.object({
  name: z.string().regex(NAME_RE, "name must be a service name").openapi({
    example: "backup",
  }),
  realm: z.string().regex(NAME_RE, "realm must be a realm name"),
  /** Rotate an existing seed (the old one stops working). */
  replace: z.boolean().default(false),
}).openapi("ServiceSeedRequest");

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

const createServiceSeed = createRoute({
  method: "post",
  path: "/services",
  summary:
    "Create (or with replace: true rotate) a service's TOTP seed in its realm (admins; authenticate with headers or a bearer token); the seed is shown in this answer only",
  request: {
    body: {
      required: true,
      content: { "application/json": { schema: ServiceSeedRequest } },
    },
  },
  responses: {
    201: {
      description: "The new seed: store it now, it is never shown again",
      content: { "application/json": { schema: SeedAnswer } },
    },
    ...errorResponses(400, 401, 403, 409, 503),
  },
});

function otpauthUri(realm: string, name: string, seed: string): string {
  const label = encodeURIComponent(`${realm}:${name}`);
  return `otpauth://totp/${label}?secret=${seed}&issuer=` +
    `${encodeURIComponent(realm)}&algorithm=SHA1&digits=6&period=30`;
}

const createSeed = createRoute({
  method: "post",
  path: "/seed",
  summary:
    "Create (or with replace: true rotate) the caller's TOTP seed with the LDAP password; the seed is shown in this answer only",
  request: {
    body: {
      required: true,
      content: { "application/json": { schema: SeedRequest } },
    },
  },
  responses: {
    201: {
      description: "The new seed: store it now, it is never shown again",
      content: { "application/json": { schema: SeedAnswer } },
    },
    ...errorResponses(400, 401, 409, 429, 503),
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

/** The principal of a public path; ':' is in no directory name. */
const ANONYMOUS = { name: "anonymous:", admin: false } as const;

/** The paths under `/v1/auth` that do not go through `auth`. */
export const PUBLIC_AUTH_PATHS = ["/v1/auth/seed", "/v1/auth/session"] as const;

/** Builds the identity pieces from the configuration. */
export async function createIdentity(
  { store, config, log = logger({ component: "auth" }), keys, now }: {
    store: Store;
    config: IdentitySettings;
    log?: Logger;
    /** The host keys; read from `identity.keyFile` when absent. */
    keys?: HostKeys;
    /** Clock of bearer tokens (tests). */
    now?: () => number;
  },
): Promise<Identity> {
  const id = config.identity;
  const hostKeys = keys ??
    await loadHostKey(id.keyFile ?? `${config.stateDir}/identity.key`, log);
  const directory = new Directory(id.ldap);
  const replay = new EtcdReplayStore(store);
  let verifier: TotpVerifier;
  let seeds: EtcdSeedStore | null = null;
  if (id.otp.mode === "ungleichotp") {
    const server = id.otp.server!;
    verifier = new UngleichOtpVerifier({
      ...server,
      replay,
      tagKey: hostKeys.tag,
    });
  } else {
    seeds = new EtcdSeedStore(store, hostKeys.seal);
    verifier = new LocalVerifier({
      seeds,
      replay,
      windowSteps: id.otp.windowSteps,
    });
  }
  const bearer = new BearerTokens({
    key: hostKeys.sign,
    revocations: new EtcdRevocationList(store),
    ttlSeconds: id.bearerTtlSeconds,
    now,
  });
  const sessions = new BearerTokens({
    key: hostKeys.sign,
    revocations: new EtcdRevocationList(store),
    ttlSeconds: id.sessionTtlSeconds,
    now,
    purpose: "session",
  });
  const rl = id.rateLimit;
  const limiter = new AuthLimiter({
    perName: {
      limit: rl.perName.limit,
      windowMs: rl.perName.windowSeconds * 1000,
      backoffBaseMs: rl.perName.backoffBaseSeconds * 1000,
      backoffMaxMs: rl.perName.backoffMaxSeconds * 1000,
    },
    perAddress: {
      limit: rl.perAddress.limit,
      windowMs: rl.perAddress.windowSeconds * 1000,
    },
  });
  const realm = id.otp.userRealm;
  const remoteAddr = forwardedAddress(config.api?.trustedProxies ?? []);
  const totp = totpAuth({
    address: remoteAddr,
    verifier,
    users: directory,
    bearer,
    sessions,
    limiter,
    userRealm: realm,
    serviceRealms: id.otp.serviceRealms,
    log,
  });
  // Seed creation proves identity with the LDAP password, not a token.
  const auth: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (
      c.req.method === "POST" &&
      (PUBLIC_AUTH_PATHS as readonly string[]).includes(c.req.path)
    ) {
      // The handler checks the LDAP password itself and reads no principal.
      c.set("principal", ANONYMOUS);
      return await next();
    }
    return await totp(c, next);
  };

  const routes = authRoutes({ bearer })
    .openapi(whoami, (c) => {
      const p = c.get("principal");
      return c.json({ ...p, method: authMethod(c) }, 200);
    })
    .openapi(createSeed, async (c) => {
      if (!seeds) {
        return errorJson(
          c,
          409,
          "Seeds are kept by the ungleich-otp server (identity.otp.mode is ungleichotp)",
        ) as never;
      }
      const { name, password = "", replace } = c.req.valid("json");
      const addr = remoteAddr(c);
      const attempt = { name: `${name}@${realm}`, address: addr };
      const wait = limiter.retryAfterMs(attempt);
      if (wait > 0) {
        c.header("Retry-After", String(Math.ceil(wait / 1000)));
        return errorJson(
          c,
          429,
          `Too many failed attempts: retry in ${Math.ceil(wait / 1000)} s`,
        ) as never;
      }
      // Throws UnavailableError (503) when LDAP is down; "" is refused.
      if (!await directory.checkPassword(name, password)) {
        limiter.fail(attempt);
        log.warn("seed refused", { name, realm, address: addr });
        return errorJson(c, 401, "Invalid name or password") as never;
      }
      limiter.succeed(attempt);
      let seed: string;
      try {
        seed = await seeds.create(realm, name, { replace });
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        throw new ConflictError(
          `${name} already has a seed: send replace: true to rotate it (the old one stops working)`,
        );
      }
      log.info(replace ? "seed rotated" : "seed created", {
        name,
        realm,
        address: addr,
      });
      c.header("Cache-Control", "no-store");
      return c.json({
        name,
        realm,
        seed,
        otpauthUri: otpauthUri(realm, name, seed),
      }, 201);
    })
    .openapi(createSession, async (c) => {
      const { name, password = "", token = "" } = c.req.valid("json");
      const addr = remoteAddr(c);
      const attempt = { name: `${name}@${realm}`, address: addr };
      const wait = limiter.retryAfterMs(attempt);
      if (wait > 0) {
        c.header("Retry-After", String(Math.ceil(wait / 1000)));
        return errorJson(
          c,
          429,
          `Too many failed attempts: retry in ${Math.ceil(wait / 1000)} s`,
        ) as never;
      }
      const refuse = (reason: string) => {
        limiter.fail(attempt);
        log.warn("session refused", { name, realm, address: addr, reason });
        return errorJson(c, 401, "Invalid name, password or token") as never;
      };
      if (!TOKEN_RE.test(token)) return refuse("malformed token");
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
    })
    .openapi(endSession, async (c) => {
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
    })
    .openapi(revokeToken, async (c) => {
      const p = c.get("principal");
      const type = c.req.header("content-type") ?? "";
      const body = /^application\/json\b/i.test(type)
        ? c.req.valid("json")
        : {};
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
    })
    .openapi(createServiceSeed, async (c) => {
      requireAdmin(c.get("principal"), "create service seeds");
      const { name, realm: svcRealm, replace } = c.req.valid("json");
      if (!Object.hasOwn(id.otp.serviceRealms, svcRealm)) {
        const known = Object.keys(id.otp.serviceRealms);
        throw new InvalidError(
          "realm",
          `realm must be a service realm (identity.otp.serviceRealms): ${
            known.length ? known.join(", ") : "none configured"
          }`,
        );
      }
      if (!seeds) {
        return errorJson(
          c,
          409,
          "Seeds are kept by the ungleich-otp server (identity.otp.mode is ungleichotp)",
        ) as never;
      }
      let seed: string;
      try {
        seed = await seeds.create(svcRealm, name, { replace });
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        throw new ConflictError(
          `Service ${name} in realm ${svcRealm} already has a seed: send replace: true to rotate it (the old one stops working)`,
        );
      }
      log.info(replace ? "service seed rotated" : "service seed created", {
        name,
        realm: svcRealm,
        by: c.get("principal").name,
      });
      c.header("Cache-Control", "no-store");
      return c.json({
        name,
        realm: svcRealm,
        seed,
        otpauthUri: otpauthUri(svcRealm, name, seed),
      }, 201);
    });
  return { auth, routes, bearer, sessions, directory, seeds };
}
