/**
 * API authentication. A caller proves who it is with a TOTP token
 * (ungleich-otp style: `name`, `realm`, `token`) in the `X-Otp-Name`,
 * `X-Otp-Realm` and `X-Otp-Token` headers, or as fields of a JSON body (what
 * ungleich-otp clients send), or with a short-lived bearer token obtained
 * from `POST /v1/auth/token`. Bearer tokens are HMAC-SHA256 signed, carry the
 * principal, and can be revoked before they expire.
 *
 * `totpAuth()` is the middleware for the `auth` slot of `createApp`;
 * `authRoutes()` is the sub-app for `/v1/auth`. Failures are 401 (429 while
 * the claimed name is in back-off after failures, see core/rate_limit.ts;
 * 503 when LDAP or etcd is down), logged with the name, realm, address and
 * reason, never with a token.
 *
 * @example
 * ```ts
 * const bearer = new BearerTokens({ key: keys.sign, revocations });
 * const auth = totpAuth({ verifier, users: directory, bearer, limiter });
 * const app = createApp({ store, auth });
 * app.route("/v1/auth", authRoutes({ bearer }));
 * ```
 */
import { Buffer } from "node:buffer";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { HTTPException } from "hono/http-exception";
import { createRoute, z } from "@hono/zod-openapi";
import { clientAddress, parseTrustedProxies } from "../core/client_address.ts";
import { UnavailableError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import type { UserDirectory } from "../core/ldap.ts";
import { type Logger, logger } from "../core/log.ts";
import type { AuthLimiter } from "../core/rate_limit.ts";
import type { Store } from "../core/store.ts";
import {
  type Credentials,
  NAME_RE,
  TOKEN_RE,
  type TotpVerifier,
} from "../core/totp.ts";
import { type AppEnv, type Principal, router } from "./env.ts";
import { errorJson, errorResponses } from "./errors.ts";

/** The headers of TOTP credentials. */
export const OTP_HEADERS = {
  name: "X-Otp-Name",
  realm: "X-Otp-Realm",
  token: "X-Otp-Token",
} as const;

/** The signed content of a bearer token. Times are seconds since epoch. */
export const BearerClaims = z.object({
  sub: z.string(),
  adm: z.boolean(),
  iat: z.number().int(),
  exp: z.number().int(),
  jti: z.string(),
});
export type BearerClaims = z.infer<typeof BearerClaims>;

/** Bearer tokens withdrawn before they expire. */
export interface RevocationList {
  revoke(jti: string, expiresAt: number): Promise<void>;
  isRevoked(jti: string): Promise<boolean>;
}

/** Revocations in one process's memory (tests, single-node development). */
export class MemoryRevocationList implements RevocationList {
  readonly #revoked = new Map<string, number>();

  constructor(readonly now: () => number = Date.now) {}

  revoke(jti: string, expiresAt: number): Promise<void> {
    const now = this.now();
    for (const [k, exp] of this.#revoked) {
      if (exp <= now) this.#revoked.delete(k);
    }
    this.#revoked.set(jti, expiresAt);
    return Promise.resolve();
  }

  isRevoked(jti: string): Promise<boolean> {
    return Promise.resolve(this.#revoked.has(jti));
  }
}

/** The etcd key of a revoked bearer token, relative to the store prefix. */
export const revokedKey = keys.authRevoked;

/**
 * Revocations in etcd, one key per revoked token bound to a lease that ends
 * when the token would have expired anyway.
 */
export class EtcdRevocationList implements RevocationList {
  constructor(
    readonly store: Store,
    readonly now: () => number = Date.now,
  ) {}

  async revoke(jti: string, expiresAt: number): Promise<void> {
    const ttl = Math.ceil((expiresAt - this.now()) / 1000);
    if (ttl <= 0) return;
    let lease: string;
    try {
      const res = await this.store.client.leaseClient.leaseGrant({
        TTL: ttl,
      }, { deadline: Date.now() + this.store.timeoutMs });
      lease = String(res.ID);
    } catch (err) {
      throw new UnavailableError(
        `Cannot revoke bearer token: etcd: ${(err as Error).message}`,
        { cause: err },
      );
    }
    await this.store.txn().put(revokedKey(jti), {
      revokedAt: new Date(this.now()).toISOString(),
    }, { lease }).commit();
  }

  async isRevoked(jti: string): Promise<boolean> {
    return (await this.store.get(revokedKey(jti), z.unknown())) !== null;
  }
}

export type BearerResult =
  | { ok: true; principal: Principal; claims: BearerClaims }
  | { ok: false; reason: "malformed" | "signature" | "expired" | "revoked" };

export interface BearerOptions {
  /** HMAC-SHA256 key (`HostKeys.sign`), the same on every API host. */
  key: CryptoKey;
  revocations: RevocationList;
  /** Lifetime of a token; 15 minutes by default. */
  ttlSeconds?: number;
  now?: () => number;
  /**
   * What the tokens are for: `bearer` (`Authorization: Bearer`, prefix
   * `uc1.`) or `session` (the `ucloud_session` cookie, prefix `ucs1.`). The
   * prefix is signed, so a token of one purpose never verifies as the other.
   */
  purpose?: TokenPurpose;
}

export type TokenPurpose = "bearer" | "session";

const PREFIXES: Record<TokenPurpose, string> = {
  bearer: "uc1.",
  session: "ucs1.",
};

/** The cookie holding a web session token. */
export const SESSION_COOKIE = "ucloud_session";

/** Issues and checks bearer tokens: `uc1.<claims base64url>.<hmac base64url>`. */
export class BearerTokens {
  readonly #key: CryptoKey;
  readonly #revocations: RevocationList;
  readonly ttlSeconds: number;
  readonly #now: () => number;
  readonly #prefix: string;
  readonly #re: RegExp;
  readonly purpose: TokenPurpose;

  constructor(
    { key, revocations, ttlSeconds = 900, now = Date.now, purpose = "bearer" }:
      BearerOptions,
  ) {
    this.#key = key;
    this.#revocations = revocations;
    this.ttlSeconds = ttlSeconds;
    this.#now = now;
    this.purpose = purpose;
    this.#prefix = PREFIXES[purpose];
    this.#re = new RegExp(
      `^${
        this.#prefix.replace(".", "\\.")
      }([A-Za-z0-9_-]+)\\.([A-Za-z0-9_-]{43})$`,
    );
  }

  async #mac(body: string): Promise<Uint8Array<ArrayBuffer>> {
    return new Uint8Array(
      await crypto.subtle.sign(
        "HMAC",
        this.#key,
        new TextEncoder().encode(this.#prefix + body),
      ),
    );
  }

  /** A new token for `p`, valid for `ttlSeconds`. */
  async issue(p: Principal): Promise<{ token: string; claims: BearerClaims }> {
    const iat = Math.floor(this.#now() / 1000);
    const claims: BearerClaims = {
      sub: p.name,
      adm: p.admin,
      iat,
      exp: iat + this.ttlSeconds,
      jti: crypto.randomUUID(),
    };
    const body = Buffer.from(JSON.stringify(claims)).toString("base64url");
    const mac = Buffer.from(await this.#mac(body)).toString("base64url");
    return { token: `${this.#prefix}${body}.${mac}`, claims };
  }

  /** Checks signature, expiry and revocation. */
  async verify(token: string): Promise<BearerResult> {
    const m = this.#re.exec(token);
    if (!m) return { ok: false, reason: "malformed" };
    const good = await crypto.subtle.verify(
      "HMAC",
      this.#key,
      new Uint8Array(Buffer.from(m[2], "base64url")),
      new TextEncoder().encode(this.#prefix + m[1]),
    );
    if (!good) return { ok: false, reason: "signature" };
    let claims: BearerClaims;
    try {
      claims = BearerClaims.parse(
        JSON.parse(Buffer.from(m[1], "base64url").toString()),
      );
    } catch {
      return { ok: false, reason: "malformed" };
    }
    if (this.#now() >= claims.exp * 1000) {
      return { ok: false, reason: "expired" };
    }
    if (await this.#revocations.isRevoked(claims.jti)) {
      return { ok: false, reason: "revoked" };
    }
    return {
      ok: true,
      principal: { name: claims.sub, admin: claims.adm },
      claims,
    };
  }

  /** Revokes a token that verifies; returns false for one that does not. */
  async revoke(token: string): Promise<boolean> {
    const r = await this.verify(token);
    if (!r.ok) return false;
    await this.#revocations.revoke(r.claims.jti, r.claims.exp * 1000);
    return true;
  }

  /**
   * Revokes the token with id `jti` without the token itself: kept for
   * `ttlSeconds`, as long as any token of this issuer can live.
   */
  async revokeId(jti: string): Promise<void> {
    await this.#revocations.revoke(jti, this.#now() + this.ttlSeconds * 1000);
  }
}

export interface TotpAuthOptions {
  verifier: TotpVerifier;
  /** Where users of `userRealm` are looked up (the LDAP directory). */
  users: UserDirectory;
  bearer: BearerTokens;
  /** Web session tokens, read from the `ucloud_session` cookie. */
  sessions?: BearerTokens;
  limiter: AuthLimiter;
  /** The realm of directory users; their principal is their name. */
  userRealm?: string;
  /** Realms of services and whether they are admins; principal `<realm>:<name>`. */
  serviceRealms?: Record<string, { admin: boolean }>;
  /**
   * The caller's address for rate limiting. Default: the connection's remote
   * address as `Deno.serve` passes it; undefined (no per-address count) when
   * there is none. Behind a proxy, pass `forwardedAddress(trustedProxies)`.
   */
  address?: (c: Context) => string | undefined;
  log?: Logger;
}

export type AuthMethod = "totp" | "bearer" | "session";

const methods = new WeakMap<Request, AuthMethod>();
const tokens = new WeakMap<Request, BearerClaims>();

/** How the request was authenticated, once `totpAuth` let it through. */
export function authMethod(c: Context): AuthMethod | undefined {
  return methods.get(c.req.raw);
}

/** The claims of the bearer or session token the request came with. */
export function currentToken(c: Context): BearerClaims | undefined {
  return tokens.get(c.req.raw);
}

function remoteAddress(c: Context): string | undefined {
  const env = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return env?.remoteAddr?.hostname;
}

/**
 * The client's address behind the reverse proxies in `trustedProxies`
 * (CIDRs): `X-Forwarded-For` is read only when the connection comes from
 * one of them (see `clientAddress`).
 *
 * @example
 * ```ts
 * totpAuth({ ...options, address: forwardedAddress(["10.0.0.0/8"]) });
 * ```
 */
export function forwardedAddress(
  trustedProxies: readonly string[],
): (c: Context) => string | undefined {
  const trusted = parseTrustedProxies(trustedProxies);
  return (c) =>
    clientAddress(remoteAddress(c), c.req.header("x-forwarded-for"), trusted);
}

function unauthorized(c: Context, message: string): Response {
  c.header("WWW-Authenticate", 'Bearer realm="ucloud"');
  return errorJson(c, 401, message);
}

function tooMany(c: Context, waitMs: number): Response {
  const seconds = Math.ceil(waitMs / 1000);
  c.header("Retry-After", String(seconds));
  return c.json({
    error: {
      status: 429,
      code: "too_many_requests",
      message: `Too many failed attempts: retry in ${seconds} s`,
    },
  }, 429);
}

function unavailable(c: Context): Response {
  return errorJson(
    c,
    503,
    "Cannot authenticate: the directory or the token store is unavailable, retry later",
  );
}

/**
 * Reads credentials from the three headers, else from a JSON body's `name`,
 * `realm` and `token` fields, which are then removed from the body the
 * handlers see. Returns null when the caller sent neither.
 */
async function readCredentials(c: Context): Promise<Credentials | null> {
  const name = c.req.header(OTP_HEADERS.name);
  const realm = c.req.header(OTP_HEADERS.realm);
  const token = c.req.header(OTP_HEADERS.token);
  if (name !== undefined || realm !== undefined || token !== undefined) {
    return { name: name ?? "", realm: realm ?? "", token: token ?? "" };
  }
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) return null;
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    return null;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return null;
  }
  const { name: n, realm: r, token: t, ...rest } = body as Record<
    string,
    unknown
  >;
  if (typeof n !== "string" || typeof r !== "string" || typeof t !== "string") {
    return null;
  }
  // hono keeps the body promise here (typed as the value) and every later
  // `c.req.json()`, the validators' included, parses it again.
  c.req.bodyCache = {
    text: Promise.resolve(JSON.stringify(rest)) as unknown as string,
  };
  return { name: n, realm: r, token: t };
}

/**
 * The auth middleware: sets `c.get("principal")` from a bearer token or TOTP
 * credentials, or answers 401 / 429 / 503 itself.
 */
export function totpAuth({
  verifier,
  users,
  bearer,
  sessions,
  limiter,
  userRealm = "ucloud",
  serviceRealms = {},
  address = remoteAddress,
  log = logger({ component: "auth" }),
}: TotpAuthOptions): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const addr = address(c);
    /** Checks a signed token of `issuer`; answers itself when refused. */
    const signed = async (
      issuer: BearerTokens,
      token: string,
      method: "bearer" | "session",
    ) => {
      // Signed tokens cannot be guessed: checked whatever the address did
      // (its failures are still counted), so a valid one always gets in.
      let r: BearerResult;
      try {
        r = await issuer.verify(token);
      } catch (err) {
        if (!(err instanceof UnavailableError)) throw err;
        log.error(`${method} check unavailable`, {
          address: addr,
          error: err.message,
        });
        return unavailable(c);
      }
      if (!r.ok) {
        limiter.fail({ address: addr });
        log.warn(`${method} token refused`, {
          address: addr,
          reason: r.reason,
        });
        return unauthorized(
          c,
          method === "bearer"
            ? "Invalid, expired or revoked bearer token"
            : "Invalid, expired or revoked session: log in again",
        );
      }
      methods.set(c.req.raw, method);
      tokens.set(c.req.raw, r.claims);
      c.set("principal", r.principal);
      return await next();
    };
    const authz = c.req.header("authorization");
    if (authz !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authz);
      if (!m) return unauthorized(c, "Authorization must be 'Bearer <token>'");
      return await signed(bearer, m[1], "bearer");
    }

    const cred = await readCredentials(c);
    const cookie = sessions ? getCookie(c, SESSION_COOKIE) : undefined;
    if (!cred && sessions && cookie !== undefined) {
      return await signed(sessions, cookie, "session");
    }
    if (!cred) {
      return unauthorized(
        c,
        `Authentication required: send ${OTP_HEADERS.name}, ${OTP_HEADERS.realm} and ${OTP_HEADERS.token}, or Authorization: Bearer <token>`,
      );
    }
    const { name, realm } = cred;
    if (
      !NAME_RE.test(name) || !NAME_RE.test(realm) || !TOKEN_RE.test(cred.token)
    ) {
      limiter.fail({ address: addr });
      log.warn("otp refused", { address: addr, reason: "malformed" });
      return unauthorized(c, "Invalid credentials");
    }
    const attempt = { name: `${name}@${realm}`, address: addr };
    const wait = limiter.retryAfterMs(attempt);
    if (wait > 0) {
      log.warn("otp refused", {
        name,
        realm,
        address: addr,
        reason: "rate limited",
      });
      return tooMany(c, wait);
    }
    let principal: Principal | null = null;
    let reason = "unknown";
    try {
      if (realm === userRealm) {
        const user = await users.lookup(name);
        if (user) principal = { name: user.name, admin: user.admin };
      } else if (Object.hasOwn(serviceRealms, realm)) {
        principal = {
          name: `${realm}:${name}`,
          admin: serviceRealms[realm].admin,
        };
      }
      if (principal) {
        const r = await verifier.verify(cred, { signal: c.req.raw.signal });
        if (!r.ok) {
          reason = r.reason;
          principal = null;
        }
      }
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
      log.error("otp check unavailable", {
        name,
        realm,
        address: addr,
        error: err.message,
      });
      return unavailable(c);
    }
    if (!principal) {
      limiter.fail(attempt);
      log.warn("otp refused", { name, realm, address: addr, reason });
      return unauthorized(c, "Invalid credentials");
    }
    limiter.succeed(attempt);
    methods.set(c.req.raw, "totp");
    c.set("principal", principal);
    await next();
  };
}

/** The answer of `POST /v1/auth/token`. */
export const BearerToken = z.object({
  token: z.string(),
  tokenType: z.literal("Bearer"),
  expiresAt: z.string().openapi({ example: "2025-01-01T12:15:00.000Z" }),
  expiresIn: z.number().int().openapi({ example: 900 }),
}).openapi("BearerToken");

const issueToken = createRoute({
  method: "post",
  path: "/token",
  summary:
    "Exchange TOTP credentials (headers or JSON body) for a bearer token",
  responses: {
    200: {
      description: "A bearer token for `Authorization: Bearer <token>`",
      content: { "application/json": { schema: BearerToken } },
    },
    ...errorResponses(401, 503),
  },
});

/** The `/v1/auth` sub-app: `POST /token`. Mount it behind `totpAuth`. */
export function authRoutes({ bearer }: { bearer: BearerTokens }) {
  return router().openapi(issueToken, async (c) => {
    if (authMethod(c) !== "totp") {
      // A bearer token must not extend itself.
      throw new HTTPException(401, {
        message:
          "Cannot issue a bearer token for a bearer token: present TOTP credentials",
      });
    }
    const { token, claims } = await bearer.issue(c.get("principal"));
    return c.json({
      token,
      tokenType: "Bearer" as const,
      expiresAt: new Date(claims.exp * 1000).toISOString(),
      expiresIn: claims.exp - claims.iat,
    }, 200);
  });
}
