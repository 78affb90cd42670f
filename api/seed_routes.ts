/**
 * The TOTP seed routes of `/v1/auth`: `POST /seed` (a user proves itself
 * with its LDAP password and gets a new seed, shown in this answer only;
 * `replace: true` rotates it) and `POST /services` (admins: a service's seed
 * in its own realm). Both answer 409 in ungleichotp mode, where the
 * ungleich-otp server keeps the seeds.
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
import type { Config } from "../core/config.ts";
import { ConflictError, InvalidError } from "../core/errors.ts";
import type { Directory } from "../core/ldap.ts";
import type { Logger } from "../core/log.ts";
import type { AuthLimiter } from "../core/rate_limit.ts";
import { type EtcdSeedStore, NAME_RE } from "../core/totp.ts";
import { type AppEnv, requireAdmin } from "./env.ts";
import { errorJson, errorResponses, tooManyAttempts } from "./errors.ts";

/** What the seed routes use. */
export interface SeedRouteOptions {
  /** The `identity` configuration (its service realms). */
  config: Config["identity"];
  /** Null in ungleichotp mode. */
  seeds: EtcdSeedStore | null;
  directory: Directory;
  limiter: AuthLimiter;
  /** The realm of directory users. */
  realm: string;
  /** The caller's address, for the limiter and the logs. */
  address: (c: Context) => string | undefined;
  log: Logger;
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

/** Adds `POST /seed`: the caller's seed, for the LDAP password. */
export function seedRoute(r: OpenAPIHono<AppEnv>, o: SeedRouteOptions): void {
  const { seeds, directory, limiter, realm, address: remoteAddr, log } = o;
  r.openapi(createSeed, async (c) => {
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
    if (wait > 0) return tooManyAttempts(c, wait) as never;
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
}
