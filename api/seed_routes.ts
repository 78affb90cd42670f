/**
 * The TOTP seed routes of `/v1/auth`: `POST /seed` (a user proves itself
 * with its LDAP password and gets a new seed, shown in this answer only;
 * `replace: true` rotates it and also needs the current TOTP token of the
 * old seed, unless an authenticated admin asks, who needs no password),
 * `GET /seed/{name}` (admins: the seed's audit record, never the seed) and
 * `POST /services` (admins: a service's seed in its own realm). They answer
 * 409 in ungleichotp mode, where the ungleich-otp server keeps the seeds.
 *
 * Password attempts at `POST /seed` are limited per user in etcd
 * (`identity.rateLimit.seedPerUser`, core/attempt_limit.ts), shared by every
 * API replica whatever the address, besides the per-replica back-off of
 * failures (core/rate_limit.ts). Each seed made or rotated is recorded in
 * its document (who, when, from where) and in a log line.
 *
 * @example
 * ```ts
 * const routes = authRoutes({ bearer });
 * seedRoute(routes, options);
 * serviceSeedRoute(routes, options);
 * ```
 */
import type { Context } from "hono";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AttemptLimit } from "../core/attempt_limit.ts";
import type { Config } from "../core/config.ts";
import { ConflictError, InvalidError, NotFoundError } from "../core/errors.ts";
import type { Directory } from "../core/ldap.ts";
import type { Logger } from "../core/log.ts";
import type { AuthLimiter } from "../core/rate_limit.ts";
import {
  type EtcdSeedStore,
  NAME_RE,
  TOKEN_RE,
  type TotpVerifier,
} from "../core/totp.ts";
import { type AppEnv, requireAdmin } from "./env.ts";
import {
  type AuthFailureReason,
  type AuthFailures,
  countFailure,
} from "./auth_failures.ts";
import { errorJson, errorResponses, tooManyAttempts } from "./errors.ts";

/** What the seed routes use. */
export interface SeedRouteOptions {
  /** The `identity` configuration (its service realms). */
  config: Config["identity"];
  /** Null in ungleichotp mode. */
  seeds: EtcdSeedStore | null;
  directory: Directory;
  /** Checks the current token of a seed being rotated. */
  verifier: TotpVerifier;
  limiter: AuthLimiter;
  /** Password attempts per user, across replicas (etcd). */
  seedAttempts: AttemptLimit;
  /** The realm of directory users. */
  realm: string;
  /** The caller's address, for the limiter and the logs. */
  address: (c: Context) => string | undefined;
  /** Where refused seed requests are counted (method `seed`). */
  failures?: AuthFailures;
  log: Logger;
}

const SeedRequest = z.object({
  name: z.string().regex(NAME_RE, "name must be a user name").openapi({
    example: "alice",
  }),
  /** The LDAP password; without it the answer is 401 (admins: not needed). */
  password: z.string().max(1024).optional(),
  /**
   * The current TOTP token of the seed being replaced: `replace: true`
   * needs it (401 without), unless an admin asks.
   */
  token: z.string().max(16).optional(),
  /** Rotate an existing seed (the old one stops working). */
  replace: z.boolean().default(false),
}).openapi("SeedRequest");

const SeedRecordDoc = z.object({
  name: z.string(),
  realm: z.string(),
  createdAt: z.string(),
  enrolledAt: z.string().optional(),
  enrolledBy: z.string().optional(),
  enrolledFrom: z.string().optional(),
  rotatedAt: z.string().optional(),
  rotatedBy: z.string().optional(),
  rotatedFrom: z.string().optional(),
  rotations: z.number().int().optional(),
}).openapi("SeedRecord");

const SeedParams = z.object({
  name: z.string().regex(NAME_RE, "name must be a user name").openapi({
    param: { name: "name", in: "path" },
    example: "alice",
  }),
});

const showSeedRecord = createRoute({
  method: "get",
  path: "/seed/{name}",
  summary:
    "A user's seed record (admins): when, by whom and from where it was enrolled and last rotated; never the seed",
  request: { params: SeedParams },
  responses: {
    200: {
      description: "The audit record of the user's seed",
      content: { "application/json": { schema: SeedRecordDoc } },
    },
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

const SeedAnswer = z.object({
  name: z.string(),
  realm: z.string(),
  seed: z.string().openapi({ example: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" }),
  otpauthUri: z.string(),
}).openapi("SeedAnswer");

const ServiceSeedRequest = z.object({
  name: z.string().regex(NAME_RE, "name must be a service name").openapi({
    example: "backup",
  }),
  realm: z.string().regex(NAME_RE, "realm must be a realm name"),
  /** Rotate an existing seed (the old one stops working). */
  replace: z.boolean().default(false),
}).openapi("ServiceSeedRequest");

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
    "Create the caller's TOTP seed with the LDAP password, or with replace: true rotate it with the password and the current TOTP token (admins: any user's, authenticated, without either); the seed is shown in this answer only",
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
    ...errorResponses(400, 401, 404, 409, 429, 503),
  },
});

/** Adds `POST /seed`: the caller's seed, for the LDAP password. */
export function seedRoute(r: OpenAPIHono<AppEnv>, o: SeedRouteOptions): void {
  const { seeds, directory, verifier, limiter, seedAttempts, realm, log } = o;
  r.openapi(createSeed, async (c) => {
    if (!seeds) {
      return errorJson(
        c,
        409,
        "Seeds are kept by the ungleich-otp server (identity.otp.mode is ungleichotp)",
      ) as never;
    }
    const { name, password = "", token = "", replace } = c.req.valid("json");
    const addr = o.address(c);
    const p = c.get("principal");
    let by = name;
    if (p.admin) {
      // An authenticated admin: any directory user, no password or token.
      if (!await directory.lookup(name)) throw new NotFoundError("user", name);
      by = p.name;
    } else {
      const attempt = { name: `${name}@${realm}`, address: addr };
      const refuse = (
        reason: AuthFailureReason,
        message = "Invalid name or password",
      ) => {
        limiter.fail(attempt);
        countFailure(o.failures, "seed", reason);
        log.warn("seed refused", { name, realm, address: addr, reason });
        return errorJson(c, 401, message) as never;
      };
      const wait = Math.max(
        limiter.retryAfterMs(attempt),
        await seedAttempts.take(attempt.name),
      );
      if (wait > 0) {
        countFailure(o.failures, "seed", "locked_out");
        log.warn("seed refused", {
          name,
          realm,
          address: addr,
          reason: "rate limited",
        });
        return tooManyAttempts(c, wait) as never;
      }
      // Throws UnavailableError (503) when LDAP is down; "" is refused.
      if (!await directory.checkPassword(name, password)) {
        return refuse("password");
      }
      // A rotation proves the seed it replaces (none: a first enrollment).
      if (replace && await seeds.record(realm, name)) {
        const missing =
          "Rotating a seed needs the current TOTP token (token) of the seed it replaces, or an admin";
        if (!TOKEN_RE.test(token)) return refuse("no_credentials", missing);
        // Checked after the password: a wrong password must not use it up.
        const v = await verifier.verify({ name, realm, token }, {
          signal: c.req.raw.signal,
        });
        if (!v.ok) return refuse(v.reason, missing);
      }
      limiter.succeed(attempt);
    }
    let seed: string;
    try {
      seed = await seeds.create(realm, name, { replace, by, from: addr });
    } catch (err) {
      if (!(err instanceof ConflictError) || replace) throw err;
      throw new ConflictError(
        `${name} already has a seed: send replace: true to rotate it (the old one stops working)`,
      );
    }
    log.info(replace ? "seed rotated" : "seed created", {
      name,
      realm,
      by,
      address: addr,
    });
    c.header("Cache-Control", "no-store");
    return c.json({
      name,
      realm,
      seed,
      otpauthUri: otpauthUri(realm, name, seed),
    }, 201);
  });
}

/** Adds `GET /seed/{name}` (admins): a user's seed record, never the seed. */
export function seedRecordRoute(
  r: OpenAPIHono<AppEnv>,
  o: SeedRouteOptions,
): void {
  r.openapi(showSeedRecord, async (c) => {
    const { name } = c.req.valid("param");
    requireAdmin(c.get("principal"), `read the seed record of ${name}`);
    if (!o.seeds) {
      return errorJson(
        c,
        409,
        "Seeds are kept by the ungleich-otp server (identity.otp.mode is ungleichotp)",
      ) as never;
    }
    const record = await o.seeds.record(o.realm, name);
    if (!record) throw new NotFoundError("seed", name);
    return c.json({ name, realm: o.realm, ...record }, 200);
  });
}

/** Adds `POST /services` (admins): a service's seed in its realm. */
export function serviceSeedRoute(
  r: OpenAPIHono<AppEnv>,
  o: SeedRouteOptions,
): void {
  const { seeds, log, config: id } = o;
  r.openapi(createServiceSeed, async (c) => {
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
      seed = await seeds.create(svcRealm, name, {
        replace,
        by: c.get("principal").name,
      });
    } catch (err) {
      if (!(err instanceof ConflictError) || replace) throw err;
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
}
