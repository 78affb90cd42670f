/**
 * `ucloud_auth_failures_total{method, reason}`: refused authentications of
 * the API (api/auth.ts, the login of api/session_routes.ts, the password
 * check of `POST /v1/auth/seed` in api/seed_routes.ts), by how the caller
 * tried (`totp`, `bearer`, `session`, `login`, `seed`, `none`) and why it
 * was refused. The counter lives in no registry: `createIdentity` makes one and
 * `createApp` registers it with the app's metrics.
 *
 * @example
 * ```ts
 * const failures = authFailures();
 * countFailure(failures, "totp", "invalid");
 * registry.registerMetric(failures);
 * ```
 */
import { Counter } from "prom-client";

/** How a refused caller tried to authenticate. */
export type AuthFailureMethod =
  | "totp"
  | "bearer"
  | "session"
  | "login"
  | "seed"
  | "none";

/**
 * Why: `no_credentials`, `malformed` (credentials or header not in their
 * form), `unknown` (no such user, realm or seed), `invalid` (wrong TOTP
 * token), `replayed` (a TOTP token used before), `locked_out` (the name is
 * in back-off after failures), `password` (wrong LDAP password), `signature`,
 * `expired`, `revoked` (bearer and session tokens), `unavailable` (the
 * directory or etcd did not answer).
 */
export type AuthFailureReason =
  | "no_credentials"
  | "malformed"
  | "unknown"
  | "invalid"
  | "replayed"
  | "locked_out"
  | "password"
  | "signature"
  | "expired"
  | "revoked"
  | "cross_origin"
  | "unavailable";

/** The counter type `countFailure` takes. */
export type AuthFailures = Counter<"method" | "reason">;

/** A new auth failure counter, registered nowhere. */
export function authFailures(): AuthFailures {
  return new Counter({
    name: "ucloud_auth_failures_total",
    help:
      "Refused authentications by how the caller tried (method) and why (reason)",
    labelNames: ["method", "reason"] as const,
    registers: [],
  });
}

/** Counts one refusal into `failures` (nothing without a counter). */
export function countFailure(
  failures: AuthFailures | undefined,
  method: AuthFailureMethod,
  reason: AuthFailureReason,
): void {
  failures?.inc({ method, reason });
}
