/**
 * Builds API authentication from the `identity` configuration: the LDAP
 * directory, TOTP seeds encrypted in etcd (or an ungleich-otp server), the
 * replay store, bearer tokens with etcd revocations, the failure limiter and
 * the `totpAuth` middleware, plus the `/v1/auth` routes (api/auth_routes.ts,
 * api/seed_routes.ts, api/session_routes.ts):
 *
 * - `POST /v1/auth/token`: TOTP credentials → a short-lived bearer token;
 * - `POST /v1/auth/seed`: LDAP name and password → a new TOTP seed for that
 *   user, returned in this one answer only (`replace: true` rotates it, with
 *   the current TOTP token too, or for an authenticated admin);
 * - `GET /v1/auth/seed/{name}` (admins): the seed's audit record;
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
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Config } from "../core/config.ts";
import { Directory } from "../core/ldap.ts";
import { type Logger, logger } from "../core/log.ts";
import { AttemptLimit } from "../core/attempt_limit.ts";
import { AuthLimiter } from "../core/rate_limit.ts";
import { type HostKeys, importHostKey, newHostKey } from "../core/secrets.ts";
import type { Store } from "../core/store.ts";
import {
  EtcdReplayStore,
  EtcdSeedStore,
  LocalVerifier,
  type TotpVerifier,
  UngleichOtpVerifier,
} from "../core/totp.ts";
import { forwardedAddress, OTP_HEADERS, totpAuth } from "./auth.ts";
import { type AuthFailures, authFailures } from "./auth_failures.ts";
import { authRoutes } from "./auth_routes.ts";
import type { AppEnv } from "./env.ts";
import { EtcdRevocationList } from "./revocations.ts";
import { seedRecordRoute, seedRoute, serviceSeedRoute } from "./seed_routes.ts";
import { sessionLogin, type WebAuth } from "./session_login.ts";
import { sessionRoutes, whoamiRoute } from "./session_routes.ts";
import { BearerTokens, SESSION_COOKIE } from "./tokens.ts";

/** The parts of the configuration identity reads. */
export type IdentitySettings = Pick<Config, "identity" | "stateDir"> & {
  /** `api.trustedProxies`: reverse proxies whose X-Forwarded-For is believed. */
  api?: { trustedProxies?: string[] };
};

/** What `createIdentity` builds. */
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
  /** Refused authentications; `createApp` registers it in its metrics. */
  failures: AuthFailures;
  /** The login and sessions of the web pages (api/web/). */
  web: WebAuth;
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

/** The principal of a public path; ':' is in no directory name. */
const ANONYMOUS = { name: "anonymous:", admin: false } as const;

/**
 * Whether a request carries credentials of `totpAuth` in its headers: a
 * bearer token, TOTP headers or the session cookie.
 */
function bringsCredentials(c: Context): boolean {
  return c.req.header("authorization") !== undefined ||
    Object.values(OTP_HEADERS).some((h) => c.req.header(h) !== undefined) ||
    getCookie(c, SESSION_COOKIE) !== undefined;
}

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
  const seedAttempts = new AttemptLimit(store, {
    scope: "seed",
    ...rl.seedPerUser,
  });
  const realm = id.otp.userRealm;
  const remoteAddr = forwardedAddress(config.api?.trustedProxies ?? []);
  const failures = authFailures();
  const totp = totpAuth({
    failures,
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
  // Seed creation and login prove identity with the LDAP password, not a
  // token; a seed request that brings credentials (an admin rotating a
  // user's seed) is authenticated as any other.
  const auth: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (
      c.req.method === "POST" &&
      (PUBLIC_AUTH_PATHS as readonly string[]).includes(c.req.path) &&
      !(c.req.path === "/v1/auth/seed" && bringsCredentials(c))
    ) {
      // The handler checks the LDAP password itself.
      c.set("principal", ANONYMOUS);
      return await next();
    }
    return await totp(c, next);
  };

  const routes = authRoutes({ bearer });
  const options = {
    config: id,
    seeds,
    directory,
    verifier,
    limiter,
    seedAttempts,
    realm,
    address: remoteAddr,
    bearer,
    sessions,
    failures,
    log,
  };
  // In this order, the order of the OpenAPI document.
  whoamiRoute(routes);
  seedRoute(routes, options);
  seedRecordRoute(routes, options);
  sessionRoutes(routes, options);
  serviceSeedRoute(routes, options);
  const web = { config: id, sessions, login: sessionLogin(options) };
  return { auth, routes, bearer, sessions, directory, seeds, failures, web };
}
