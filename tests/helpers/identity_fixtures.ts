/**
 * Small pieces of the identity tests: `otpauth()` makes TOTP codes
 * independently of the code under test, `Secrets` records seeds and tokens
 * and asserts no body or log line shows them, `ldapConfig()` points the
 * directory at a test slapd.
 */
import assert from "node:assert/strict";
import * as OTPAuth from "otpauth";
import { IdentityConfig } from "../../core/ldap.ts";
import { recordSecret } from "./secrets_log.ts";
import { BASE_DN, SERVICE_DN, SERVICE_PW, type Slapd } from "./slapd.ts";

/** A TOTP generator for `seed` (SHA1, 6 digits, 30 s). */
export function otpauth(seed: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32(seed),
    algorithm: "SHA1",
    digits: 6,
    period: 30,
  });
}

/** Seeds and tokens used by a test, and what must never show them. */
export class Secrets {
  readonly values = new Set<string>();
  readonly bodies: string[] = [];

  add<T extends string>(v: T): T {
    recordSecret(v);
    this.values.add(v);
    return v;
  }

  /** Asserts that no body or line holds any secret. */
  check(lines: string[], extra: string[] = []): void {
    for (const text of [...this.bodies, ...lines]) {
      for (const s of [...this.values, ...extra]) {
        assert.ok(
          !new RegExp(`(^|[^0-9A-Za-z])${s}([^0-9A-Za-z]|$)`).test(text),
          `secret found in: ${text}`,
        );
      }
    }
  }
}

/** The LDAP settings for `slapd`, bound as the service account. */
export const ldapConfig = (slapd: Slapd) =>
  IdentityConfig.parse({
    ldap: {
      url: slapd.url,
      baseDn: BASE_DN,
      bindDn: SERVICE_DN,
      bindPassword: SERVICE_PW,
      timeoutMs: 1000,
    },
  }).ldap;
