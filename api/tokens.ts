/**
 * Signed bearer and web-session tokens: `BearerTokens` issues them
 * (`uc1.` / `ucs1.` + claims + HMAC-SHA256), verifies signature, expiry and
 * revocation (api/revocations.ts), and revokes them.
 *
 * @example
 * ```ts
 * const bearer = new BearerTokens({ key: keys.sign, revocations });
 * const { token } = await bearer.issue({ name: "alice", admin: false });
 * const r = await bearer.verify(token); // { ok: true, principal, claims }
 * ```
 */
import { Buffer } from "node:buffer";
import { z } from "@hono/zod-openapi";
import type { Principal } from "./env.ts";
import type { RevocationList } from "./revocations.ts";

/** The signed content of a bearer token. Times are seconds since epoch. */
export const BearerClaims = z.object({
  sub: z.string(),
  adm: z.boolean(),
  iat: z.number().int(),
  exp: z.number().int(),
  jti: z.string(),
});
export type BearerClaims = z.infer<typeof BearerClaims>;

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

  /**
   * An HMAC (base64url) of `context` with this issuer's key, for values
   * bound to a token, such as the CSRF token of a web session
   * (api/web/csrf.ts). Never a token's MAC: those sign the prefix first.
   */
  async tag(context: string): Promise<string> {
    const mac = await crypto.subtle.sign(
      "HMAC",
      this.#key,
      new TextEncoder().encode(`tag:${context}`),
    );
    return Buffer.from(mac).toString("base64url");
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
    const lapsed = await this.lapsed(claims);
    if (lapsed) return { ok: false, reason: lapsed };
    return {
      ok: true,
      principal: { name: claims.sub, admin: claims.adm },
      claims,
    };
  }

  /**
   * Why the token of `claims` (verified before) no longer holds: expired,
   * revoked, or null while it does. Long requests (event streams) ask again.
   */
  async lapsed(claims: BearerClaims): Promise<"expired" | "revoked" | null> {
    if (this.#now() >= claims.exp * 1000) return "expired";
    if (await this.#revocations.isRevoked(claims.jti)) return "revoked";
    return null;
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
