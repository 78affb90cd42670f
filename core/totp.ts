/**
 * TOTP authentication compatible with ungleich-otp: a caller proves
 * `(name, realm)` with a 6-digit SHA-1 TOTP (RFC 6238, 30 s steps) of its
 * seed. Stricter than ungleich-otp: a token is accepted at most once per
 * name and realm (a replay store records each used step) and at most one
 * step either side of now.
 *
 * Two verifiers share one interface: `LocalVerifier` checks against seeds
 * that ucloud keeps encrypted in etcd (`EtcdSeedStore`); `UngleichOtpVerifier`
 * asks an external ungleich-otp server. The parts live in files of their own
 * and are re-exported here: tokens and formats (`totp_token.ts`, shared with
 * the CLI), replay stores (`totp_replay.ts`), seed stores (`totp_seeds.ts`).
 *
 * @example
 * ```ts
 * const seeds = new EtcdSeedStore(store, keys.seal);
 * const seed = await seeds.create("ucloud", "alice"); // shown once
 * const verifier = new LocalVerifier({ seeds, replay: new EtcdReplayStore(store) });
 * const r = await verifier.verify({ name: "alice", realm: "ucloud", token: "123456" });
 * if (!r.ok) console.log(r.reason); // "unknown" | "invalid" | "replayed"
 * ```
 */
import { Buffer } from "node:buffer";
import { UnavailableError } from "./errors.ts";
import { keys } from "./keys.ts";
import type { ReplayStore } from "./totp_replay.ts";
import type { SeedSource } from "./totp_seeds.ts";
import {
  TOKEN_RE,
  tokenMatches,
  totp,
  TOTP_STEP_SECONDS,
  totpCounter,
} from "./totp_token.ts";

export {
  hotp,
  NAME_RE,
  TOKEN_RE,
  totp,
  TOTP_DIGITS,
  TOTP_STEP_SECONDS,
  totpCounter,
} from "./totp_token.ts";
export {
  EtcdReplayStore,
  MemoryReplayStore,
  type ReplayStore,
} from "./totp_replay.ts";
export {
  EtcdSeedStore,
  MemorySeedStore,
  type SeedAuthor,
  SeedDoc,
  type SeedRecord,
  type SeedSource,
} from "./totp_seeds.ts";

/** The etcd keys of TOTP authentication, relative to the store prefix. */
export const otpKeys = {
  seed: keys.otpSeed,
  used: keys.otpUsed,
} as const;

/** A caller's claim: who it is and its current token. */
export interface Credentials {
  name: string;
  realm: string;
  token: string;
}

/** Why a token was refused. */
export type RejectReason = "unknown" | "invalid" | "replayed";

export type VerifyResult = { ok: true } | { ok: false; reason: RejectReason };

/** Checks a caller's token. Throws `UnavailableError` when a dependency is down. */
export interface TotpVerifier {
  verify(
    cred: Credentials,
    opts?: { signal?: AbortSignal },
  ): Promise<VerifyResult>;
}

export interface LocalVerifierOptions {
  seeds: SeedSource;
  replay: ReplayStore;
  /** Steps accepted either side of now: 0 or 1. */
  windowSteps?: number;
  /** Clock, the test seam. */
  now?: () => number;
}

/** Verifies tokens against ucloud's own seeds. */
export class LocalVerifier implements TotpVerifier {
  readonly #seeds: SeedSource;
  readonly #replay: ReplayStore;
  readonly #window: number;
  readonly #now: () => number;

  constructor(
    { seeds, replay, windowSteps = 1, now = Date.now }: LocalVerifierOptions,
  ) {
    if (!Number.isInteger(windowSteps) || windowSteps < 0 || windowSteps > 1) {
      throw new RangeError("windowSteps must be 0 or 1");
    }
    this.#seeds = seeds;
    this.#replay = replay;
    this.#window = windowSteps;
    this.#now = now;
  }

  async verify({ name, realm, token }: Credentials): Promise<VerifyResult> {
    if (!TOKEN_RE.test(token)) return { ok: false, reason: "invalid" };
    const seed = await this.#seeds.get(realm, name);
    if (seed === null) return { ok: false, reason: "unknown" };
    const now = this.#now();
    const current = totpCounter(now);
    let matched = false;
    for (let c = current - this.#window; c <= current + this.#window; c++) {
      if (!tokenMatches(seed, token, c)) continue;
      matched = true;
      // Counter c is accepted until the clock is more than `window` past it.
      const expiresAt = (c + this.#window + 1) * TOTP_STEP_SECONDS * 1000;
      if (
        await this.#replay.claim(
          otpKeys.used(realm, name, String(c)),
          expiresAt,
        )
      ) return { ok: true };
    }
    return { ok: false, reason: matched ? "replayed" : "invalid" };
  }
}

export interface UngleichOtpVerifierOptions {
  /** The verify endpoint, e.g. `https://otp.example/ungleichotp/verify/`. */
  url: string;
  /** This service's own triple at the ungleich-otp server. */
  name: string;
  realm: string;
  seed: string;
  replay: ReplayStore;
  /** HMAC key naming replay records (`HostKeys.tag`): tokens are not stored. */
  tagKey: CryptoKey;
  /**
   * Steps either side of now that the server accepts: ungleich-otp's
   * reference server calls `pyotp.TOTP(seed).verify(token, valid_window=3)`.
   * Replay records are kept that long.
   */
  serverWindowSteps?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/**
 * Verifies tokens with an external ungleich-otp server. The protocol, from
 * the README and `ungleichotpclient.py` of ungleich/ungleich-otp: POST JSON
 * `{ name, realm, token, verifyname, verifyrealm, verifytoken }` to
 * `/ungleichotp/verify/`, where name/realm/token are this service's own
 * triple (its realm must be allowed to verify, e.g. `ungleich-auth`) and the
 * verify* fields the caller's. The answer is 200 `{"status": "OK"}` when both
 * triples are valid; 403 (or 401) `{"detail": ...}` when either token is
 * wrong; 400 with serializer errors for missing fields. ungleich-otp itself
 * keeps no record of used tokens, so this verifier adds the replay check.
 */
export class UngleichOtpVerifier implements TotpVerifier {
  readonly #o: Required<UngleichOtpVerifierOptions>;

  constructor(opts: UngleichOtpVerifierOptions) {
    this.#o = {
      serverWindowSteps: 3,
      timeoutMs: 5000,
      fetch: globalThis.fetch,
      now: Date.now,
      ...opts,
    };
  }

  async verify(
    { name, realm, token }: Credentials,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<VerifyResult> {
    if (!TOKEN_RE.test(token)) return { ok: false, reason: "invalid" };
    const o = this.#o;
    const now = o.now();
    const body = {
      name: o.name,
      realm: o.realm,
      token: totp(o.seed, now),
      verifyname: name,
      verifyrealm: realm,
      verifytoken: token,
    };
    const timeout = AbortSignal.timeout(o.timeoutMs);
    let res: Response;
    try {
      res = await o.fetch(o.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      throw new UnavailableError(
        `Cannot verify token: ungleich-otp server ${o.url}: ${
          (err as Error).message
        }`,
        { cause: err },
      );
    }
    const text = await res.text().catch(() => "");
    if (res.status === 400 || res.status === 401 || res.status === 403) {
      return { ok: false, reason: "invalid" };
    }
    let status: unknown;
    try {
      status = JSON.parse(text)?.status;
    } catch { /* not JSON: handled below */ }
    if (res.status !== 200 || status !== "OK") {
      throw new UnavailableError(
        `Cannot verify token: ungleich-otp server ${o.url} answered ${res.status}`,
      );
    }
    const mac = await crypto.subtle.sign(
      "HMAC",
      o.tagKey,
      new TextEncoder().encode(`${realm}\0${name}\0${token}`),
    );
    const tag = "t" + Buffer.from(mac).subarray(0, 16).toString("hex");
    const expiresAt = now +
      (2 * o.serverWindowSteps + 1) * TOTP_STEP_SECONDS * 1000;
    if (!await o.replay.claim(otpKeys.used(realm, name, tag), expiresAt)) {
      return { ok: false, reason: "replayed" };
    }
    return { ok: true };
  }
}
