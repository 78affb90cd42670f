/**
 * The API's authentication middleware. A caller proves who it is with a TOTP
 * token (ungleich-otp style: `name`, `realm`, `token`) in the `X-Otp-Name`,
 * `X-Otp-Realm` and `X-Otp-Token` headers, or as fields of a JSON body (what
 * ungleich-otp clients send), or with a short-lived bearer token obtained
 * from `POST /v1/auth/token` (api/auth_routes.ts), or with the web session
 * cookie. Tokens are checked by api/tokens.ts.
 *
 * `totpAuth()` is the middleware for the `auth` slot of `createApp`.
 * Failures are 401 (429 while the claimed name is in back-off after
 * failures, see core/rate_limit.ts; 503 when LDAP or etcd is down), logged
 * with the name, realm, address and reason, never with a token.
 *
 * @example
 * ```ts
 * const bearer = new BearerTokens({ key: keys.sign, revocations });
 * const auth = totpAuth({ verifier, users: directory, bearer, limiter });
 * const app = createApp({ store, auth });
 * app.route("/v1/auth", authRoutes({ bearer }));
 * ```
 */
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { clientAddress, parseTrustedProxies } from "../core/client_address.ts";
import { UnavailableError } from "../core/errors.ts";
import type { UserDirectory } from "../core/ldap.ts";
import { type Logger, logger } from "../core/log.ts";
import type { AuthLimiter } from "../core/rate_limit.ts";
import {
  type Credentials,
  NAME_RE,
  TOKEN_RE,
  type TotpVerifier,
} from "../core/totp.ts";
import { type AuthFailures, countFailure } from "./auth_failures.ts";
import type { AppEnv, Principal } from "./env.ts";
import { errorJson, tooManyAttempts } from "./errors.ts";
import {
  type BearerClaims,
  type BearerResult,
  type BearerTokens,
  SESSION_COOKIE,
} from "./tokens.ts";

/** The headers of TOTP credentials. */
export const OTP_HEADERS = {
  name: "X-Otp-Name",
  realm: "X-Otp-Realm",
  token: "X-Otp-Token",
} as const;

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
  /** Where refusals are counted by method and reason (api/auth_failures.ts). */
  failures?: AuthFailures;
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
 * True for a write (not GET, HEAD or OPTIONS) that a browser says comes
 * from another origin: `Sec-Fetch-Site` other than `same-origin`, or an
 * `Origin` whose host is not this request's `Host`. The session cookie is
 * SameSite=Strict, but a sibling subdomain or another port is the same
 * site; the web pages' forms carry a CSRF token of their own (api/web/),
 * and this guards the cookie-authenticated `/v1` writes (a body-less POST
 * needs no CORS preflight). A request with neither header (no browser, or
 * a very old one) is left to SameSite.
 */
export function crossOriginWrite(c: Context): boolean {
  if (["GET", "HEAD", "OPTIONS"].includes(c.req.method)) return false;
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined) return site !== "same-origin";
  const origin = c.req.header("origin");
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== c.req.header("host");
  } catch {
    return true;
  }
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
  failures,
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
        countFailure(failures, method, "unavailable");
        return unavailable(c);
      }
      if (!r.ok) {
        limiter.fail({ address: addr });
        countFailure(failures, method, r.reason);
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
      if (!m) {
        countFailure(failures, "bearer", "malformed");
        return unauthorized(c, "Authorization must be 'Bearer <token>'");
      }
      return await signed(bearer, m[1], "bearer");
    }

    const cred = await readCredentials(c);
    const cookie = sessions ? getCookie(c, SESSION_COOKIE) : undefined;
    if (!cred && sessions && cookie !== undefined) {
      if (crossOriginWrite(c)) {
        countFailure(failures, "session", "cross_origin");
        log.warn("session write from another origin refused", {
          address: addr,
          origin: c.req.header("origin"),
          site: c.req.header("sec-fetch-site"),
        });
        return errorJson(
          c,
          403,
          "A request with the session cookie that changes something must come from this site's own pages",
        );
      }
      return await signed(sessions, cookie, "session");
    }
    if (!cred) {
      countFailure(failures, "none", "no_credentials");
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
      countFailure(failures, "totp", "malformed");
      log.warn("otp refused", { address: addr, reason: "malformed" });
      return unauthorized(c, "Invalid credentials");
    }
    const attempt = { name: `${name}@${realm}`, address: addr };
    const wait = limiter.retryAfterMs(attempt);
    if (wait > 0) {
      countFailure(failures, "totp", "locked_out");
      log.warn("otp refused", {
        name,
        realm,
        address: addr,
        reason: "rate limited",
      });
      return tooManyAttempts(c, wait);
    }
    let principal: Principal | null = null;
    let reason: "unknown" | "invalid" | "replayed" = "unknown";
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
      countFailure(failures, "totp", "unavailable");
      return unavailable(c);
    }
    if (!principal) {
      limiter.fail(attempt);
      countFailure(failures, "totp", reason);
      log.warn("otp refused", { name, realm, address: addr, reason });
      return unauthorized(c, "Invalid credentials");
    }
    limiter.succeed(attempt);
    methods.set(c.req.raw, "totp");
    c.set("principal", principal);
    await next();
  };
}
