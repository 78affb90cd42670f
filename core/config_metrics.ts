/**
 * The `api.metrics` section of the configuration (core/config.ts): who may
 * scrape the API's `GET /metrics`. A scraper gets in when its address
 * (api/auth.ts `forwardedAddress`: behind a proxy in `api.trustedProxies`,
 * the client it names) is in `allow`, or when it sends
 * `Authorization: Bearer <token>` with the token kept in `bearerTokenFile`.
 * The default is loopback only: the metrics name routes, tasks and hosts
 * that users of the API have no business seeing.
 *
 * @example
 * ```ts
 * const m = MetricsConfig.parse({ allow: ["2001:db8:9::/64"] });
 * ```
 */
import { z } from "zod";
import { parseTrustedProxies } from "./client_address.ts";

function addressOk(entry: string): boolean {
  try {
    parseTrustedProxies([entry]);
    return true;
  } catch {
    return false;
  }
}

export const MetricsConfig = z.object({
  /** Addresses and CIDRs that may scrape; `[]`: only the bearer token. */
  allow: z.array(
    z.string().refine(addressOk, {
      message: "must be an IPv4 or IPv6 address or CIDR",
    }),
  ).default(["127.0.0.1", "::1"]),
  /**
   * A file holding the bearer token a scraper may send from anywhere
   * (Prometheus `authorization: { credentials_file: ... }`); read at each
   * scrape, so it can be replaced without a restart. At least 16 characters.
   */
  bearerTokenFile: z.string().min(1).optional(),
});
export type MetricsConfig = z.infer<typeof MetricsConfig>;
