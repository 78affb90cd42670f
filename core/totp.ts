/**
 * TOTP authentication compatible with ungleich-otp: a caller proves
 * `(name, realm)` with a 6-digit SHA-1 TOTP (RFC 6238, 30 s steps) of its
 * seed. Stricter than ungleich-otp: a token is accepted at most once per
 * name and realm (a replay store records each used step) and at most one
 * step either side of now.
 *
 * Two verifiers share one interface: `LocalVerifier` checks against seeds
 * that ucloud keeps encrypted in etcd (`EtcdSeedStore`); `UngleichOtpVerifier`
 * asks an external ungleich-otp server.
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
import { timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { ConflictError, UnavailableError } from "./errors.ts";
import { keys } from "./keys.ts";
import {
  base32Decode,
  decryptSecret,
  encryptSecret,
  newSeed,
} from "./secrets.ts";
import type { Store } from "./store.ts";

/** The TOTP step of ungleich-otp (pyotp's default), in seconds. */
export const TOTP_STEP_SECONDS = 30;
/** Digits of a token. */
export const TOTP_DIGITS = 6;

/**
 * What a name or realm may look like: 1-128 characters (ungleich-otp's
 * limit), no `/` or `:` (they are etcd key and principal separators).
 */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
/** What a token may look like. */
export const TOKEN_RE = /^[0-9]{6}$/;

/** The etcd keys of this module, relative to the store prefix. */
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

/** HOTP (RFC 4226) of a base32 seed at `counter`. */
export async function hotp(
  seed: string,
  counter: number,
  digits = TOTP_DIGITS,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    base32Decode(seed),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  return hotpWithKey(key, counter, digits);
}

async function hotpWithKey(
  key: CryptoKey,
  counter: number,
  digits: number,
): Promise<string> {
  const msg = new DataView(new ArrayBuffer(8));
  msg.setUint32(0, Math.floor(counter / 2 ** 32));
  msg.setUint32(4, counter >>> 0);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, msg));
  const off = mac[mac.length - 1] & 0xf;
  const bin = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) |
    (mac[off + 2] << 8) | mac[off + 3];
  return String(bin % 10 ** digits).padStart(digits, "0");
}

/** The TOTP step counter at `nowMs`. */
export function totpCounter(
  nowMs: number,
  stepSeconds = TOTP_STEP_SECONDS,
): number {
  return Math.floor(nowMs / 1000 / stepSeconds);
}

/** The TOTP token of a base32 seed at `nowMs` (what `oathtool --totp -b` prints). */
export function totp(seed: string, nowMs = Date.now()): Promise<string> {
  return hotp(seed, totpCounter(nowMs));
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Records used tokens so that each is accepted at most once. */
export interface ReplayStore {
  /**
   * Marks `id` used until `expiresAt` (ms since epoch). Returns false when
   * it was already marked: the token is a replay.
   */
  claim(id: string, expiresAt: number): Promise<boolean>;
}

/** A replay store for one process (tests, single-node development). */
export class MemoryReplayStore implements ReplayStore {
  readonly #used = new Map<string, number>();
  readonly #now: () => number;
  #nextPrune = 0;

  constructor({ now = Date.now }: { now?: () => number } = {}) {
    this.#now = now;
  }

  claim(id: string, expiresAt: number): Promise<boolean> {
    const now = this.#now();
    if (now >= this.#nextPrune) {
      for (const [k, exp] of this.#used) if (exp <= now) this.#used.delete(k);
      this.#nextPrune = now + TOTP_STEP_SECONDS * 1000;
    }
    const exp = this.#used.get(id);
    if (exp !== undefined && exp > now) return Promise.resolve(false);
    this.#used.set(id, expiresAt);
    return Promise.resolve(true);
  }
}

/**
 * The replay store of a cluster: one etcd key per used token, created in an
 * `ifAbsent` transaction (so two API replicas cannot both accept it) and
 * bound to a lease that outlives the token's validity. Records whose expiry
 * falls in the same `rotateSeconds` bucket share one lease, so there are few
 * leases and each holds a bounded number of keys (DESIGN.md rule 5).
 */
export class EtcdReplayStore implements ReplayStore {
  readonly #rotateMs: number;
  readonly #now: () => number;
  /** Lease ids by expiry bucket; a bucket's lease ends after the bucket. */
  readonly #leases = new Map<number, Promise<string>>();

  constructor(
    readonly store: Store,
    { rotateSeconds = 10, now = Date.now }: {
      rotateSeconds?: number;
      now?: () => number;
    } = {},
  ) {
    this.#rotateMs = rotateSeconds * 1000;
    this.#now = now;
  }

  async claim(id: string, expiresAt: number): Promise<boolean> {
    const bucket = Math.floor(expiresAt / this.#rotateMs);
    const lease = await this.#leaseFor(bucket);
    try {
      const r = await this.store.txn().ifAbsent(id)
        .put(id, { usedAt: new Date(this.#now()).toISOString() }, { lease })
        .commit();
      return r.ok;
    } catch (err) {
      // The lease may be gone (e.g. revoked): grant a new one next time.
      this.#forget(bucket, lease);
      throw err;
    }
  }

  #leaseFor(bucket: number): Promise<string> {
    const have = this.#leases.get(bucket);
    if (have) return have;
    const now = this.#now();
    for (const b of this.#leases.keys()) {
      if ((b + 1) * this.#rotateMs <= now) this.#leases.delete(b);
    }
    // Granted after `now`, so it ends after the bucket, after every expiry in it.
    const ttl = Math.max(
      1,
      Math.ceil(((bucket + 1) * this.#rotateMs - now) / 1000),
    );
    const p = this.store.client.leaseClient.leaseGrant({ TTL: ttl }, {
      deadline: Date.now() + this.store.timeoutMs,
    }).then((res) => String(res.ID), (err) => {
      if (this.#leases.get(bucket) === p) this.#leases.delete(bucket);
      throw new UnavailableError(
        `Cannot grant replay lease: etcd: ${(err as Error).message}`,
        { cause: err },
      );
    });
    this.#leases.set(bucket, p);
    return p;
  }

  #forget(bucket: number, lease: string): void {
    this.#leases.get(bucket)?.then((l) => {
      if (l === lease) this.#leases.delete(bucket);
    }, () => {});
  }
}

/** Where seeds are looked up. */
export interface SeedSource {
  /** The base32 seed of `(realm, name)`, or null when there is none. */
  get(realm: string, name: string): Promise<string | null>;
}

/** Seeds in one process's memory (tests, single-node development). */
export class MemorySeedStore implements SeedSource {
  readonly #seeds = new Map<string, string>();

  set(realm: string, name: string, seed: string): void {
    this.#seeds.set(otpKeys.seed(realm, name), seed);
  }

  get(realm: string, name: string): Promise<string | null> {
    return Promise.resolve(this.#seeds.get(otpKeys.seed(realm, name)) ?? null);
  }
}

/** The etcd document of a seed: the seed encrypted, bound to its key. */
export const SeedDoc = z.object({
  seed: z.string(),
  createdAt: z.string(),
});
export type SeedDoc = z.infer<typeof SeedDoc>;

/**
 * Seeds in etcd under `otp-seed/<realm>/<name>`, encrypted with the host's
 * seal key (AES-GCM, the key path as associated data: a seed copied to
 * another name does not decrypt).
 */
export class EtcdSeedStore implements SeedSource {
  constructor(readonly store: Store, readonly sealKey: CryptoKey) {}

  /**
   * Creates a seed for `(realm, name)` and returns it: the only time it is
   * shown. Throws `ConflictError` when one exists, unless `replace`.
   */
  async create(
    realm: string,
    name: string,
    { replace = false }: { replace?: boolean } = {},
  ): Promise<string> {
    const key = otpKeys.seed(realm, name);
    const seed = newSeed();
    const doc: SeedDoc = {
      seed: await encryptSecret(this.sealKey, seed, key),
      createdAt: new Date().toISOString(),
    };
    const txn = this.store.txn();
    if (!replace) txn.ifAbsent(key);
    const r = await txn.put(key, doc).commit();
    if (!r.ok) {
      throw new ConflictError(
        `Cannot create seed: ${name} in realm ${realm} already has one`,
      );
    }
    return seed;
  }

  async get(realm: string, name: string): Promise<string | null> {
    const key = otpKeys.seed(realm, name);
    const kv = await this.store.get(key, SeedDoc);
    return kv ? await decryptSecret(this.sealKey, kv.value.seed, key) : null;
  }

  /** Deletes the seed; returns false when there was none. */
  async delete(realm: string, name: string): Promise<boolean> {
    const key = otpKeys.seed(realm, name);
    const kv = await this.store.get(key, SeedDoc);
    if (!kv) return false;
    await this.store.txn().delete(key).commit();
    return true;
  }
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
    const key = await crypto.subtle.importKey(
      "raw",
      base32Decode(seed),
      { name: "HMAC", hash: "SHA-1" },
      false,
      ["sign"],
    );
    const now = this.#now();
    const current = totpCounter(now);
    let matched = false;
    for (let c = current - this.#window; c <= current + this.#window; c++) {
      if (!sameToken(await hotpWithKey(key, c, TOTP_DIGITS), token)) continue;
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
      token: await totp(o.seed, now),
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
