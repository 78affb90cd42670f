/**
 * TOTP tokens as ungleich-otp and authenticator apps make them (RFC 6238:
 * HMAC-SHA1, 30 s steps, 6 digits), computed and compared by the `otpauth`
 * package, and the formats of names and tokens. The one implementation of
 * the API (`core/totp.ts`) and the CLI: it imports nothing that reaches etcd
 * or starts processes.
 *
 * @example
 * ```ts
 * const counter = totpCounter(Date.now());
 * const token = hotp(seed, counter); // what `oathtool --totp -b` prints
 * tokenMatches(seed, token, counter); // true
 * ```
 */
import { HOTP, Secret } from "otpauth";
import { base32Decode } from "./secrets.ts";

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

/**
 * The seed as otpauth takes it. Base32 as `core/secrets.ts` reads it (case,
 * spaces and `=` ignored); throws `TypeError` on any other character.
 */
function secret(seed: string): Secret {
  return new Secret({ buffer: base32Decode(seed).buffer });
}

/** HOTP (RFC 4226, HMAC-SHA1) of a base32 seed at `counter`. */
export function hotp(
  seed: string,
  counter: number,
  digits = TOTP_DIGITS,
): string {
  return HOTP.generate({
    secret: secret(seed),
    algorithm: "SHA1",
    digits,
    counter,
  });
}

/** The TOTP step counter at `nowMs`. */
export function totpCounter(
  nowMs: number,
  stepSeconds = TOTP_STEP_SECONDS,
): number {
  return Math.floor(nowMs / 1000 / stepSeconds);
}

/** The TOTP token of a base32 seed at `nowMs` (what `oathtool --totp -b` prints). */
export function totp(seed: string, nowMs = Date.now()): string {
  return hotp(seed, totpCounter(nowMs));
}

/**
 * Whether `token` is the seed's token at exactly `counter`, compared in
 * constant time. The caller walks the counters of its drift window itself,
 * so that a replayed step can be told from a wrong token.
 */
export function tokenMatches(
  seed: string,
  token: string,
  counter: number,
): boolean {
  return HOTP.validate({
    token,
    secret: secret(seed),
    algorithm: "SHA1",
    digits: TOTP_DIGITS,
    counter,
    window: 0,
  }) === 0;
}
