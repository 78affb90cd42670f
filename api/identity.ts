/**
 * Builds API authentication from the `identity` configuration: the LDAP
 * directory, TOTP seeds encrypted in etcd (or an ungleich-otp server), the
 * replay store, bearer tokens with etcd revocations, the failure limiter and
 * the `totpAuth` middleware, plus the `/v1/auth` routes:
 *
 * - `POST /v1/auth/token`: TOTP credentials → a short-lived bearer token;
 * - `POST /v1/auth/seed`: LDAP name and password → a new TOTP seed for that
 *   user, returned in this one answer only (`replace: true` rotates it);
 * - `GET /v1/auth/whoami`: the caller's principal.
 *
 * @example
 * ```ts
 * const identity = await createIdentity({ store, config });
 * const app = createApp({ store, config, identity });
 * ```
 */
import type { MiddlewareHandler } from "hono";
import { createRoute, z } from "@hono/zod-openapi";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Config } from "../core/config.ts";
import { ConflictError } from "../core/errors.ts";
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
  type TotpVerifier,
  UngleichOtpVerifier,
} from "../core/totp.ts";
import {
  authMethod,
  authRoutes,
  BearerTokens,
  EtcdRevocationList,
  totpAuth,
} from "./auth.ts";
import type { AppEnv } from "./env.ts";
import { errorJson, errorResponses } from "./errors.ts";

export type IdentitySettings = Pick<Config, "identity" | "stateDir">;

export interface Identity {
  /** The middleware for `createApp`'s `auth` slot. */
  auth: MiddlewareHandler<AppEnv>;
  /** The `/v1/auth` sub-app. */
  routes: OpenAPIHono<AppEnv>;
  bearer: BearerTokens;
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
  method: z.enum(["totp", "bearer"]).optional(),
}).openapi("Whoami");

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
export const PUBLIC_AUTH_PATHS = ["/v1/auth/seed"] as const;

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
  const rl = id.rateLimit;
  const limiter = new AuthLimiter({
    perName: {
      limit: rl.perName.limit,
      windowMs: rl.perName.windowSeconds * 1000,
    },
    perAddress: {
      limit: rl.perAddress.limit,
      windowMs: rl.perAddress.windowSeconds * 1000,
    },
  });
  const realm = id.otp.userRealm;
  const totp = totpAuth({
    verifier,
    users: directory,
    bearer,
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
      const addr = (c.env as { remoteAddr?: { hostname?: string } } | undefined)
        ?.remoteAddr?.hostname;
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
      const label = encodeURIComponent(`${realm}:${name}`);
      const otpauthUri = `otpauth://totp/${label}?secret=${seed}&issuer=` +
        `${encodeURIComponent(realm)}&algorithm=SHA1&digits=6&period=30`;
      c.header("Cache-Control", "no-store");
      return c.json({ name, realm, seed, otpauthUri }, 201);
    });
  return { auth, routes, bearer, directory, seeds };
}
