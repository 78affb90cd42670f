/**
 * Who may scrape `GET /metrics` (config `api.metrics`, core/config_metrics.ts;
 * the rules are core/metrics_access.ts): a client whose address is in
 * `allow`, or one that sends the bearer token of `bearerTokenFile`.
 * Everyone else gets 403 (401 for a wrong token), and a request with no
 * address (no network peer) is refused too.
 *
 * @example
 * ```ts
 * app.use("/metrics", metricsAccess({ allow: ["127.0.0.1", "::1"] }));
 * ```
 */
import type { Context, MiddlewareHandler } from "hono";
import { clientAddress, parseTrustedProxies } from "../core/client_address.ts";
import type { MetricsConfig } from "../core/config_metrics.ts";
import { type Logger, logger } from "../core/log.ts";
import { scrapeAccess, type ScrapeVerdict } from "../core/metrics_access.ts";
import { errorJson } from "./errors.ts";

export { MIN_METRICS_TOKEN } from "../core/metrics_access.ts";

export interface MetricsAccessOptions extends Partial<MetricsConfig> {
  /** `api.trustedProxies`: whose `X-Forwarded-For` names the client. */
  trustedProxies?: readonly string[];
  log?: Logger;
}

function remoteAddress(c: Context): string | undefined {
  const env = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return env?.remoteAddr?.hostname;
}

/**
 * The rule of the module comment as a check of one request. Also guards
 * Prometheus' discovery (api/monitoring.ts), which falls back to an
 * admin's login.
 */
export function scrapeCheck({
  allow,
  bearerTokenFile,
  trustedProxies = [],
  log = logger({ component: "api" }),
}: MetricsAccessOptions = {}): (c: Context) => Promise<ScrapeVerdict> {
  const check = scrapeAccess({ allow, bearerTokenFile }, log);
  const trusted = parseTrustedProxies(trustedProxies);
  return (c) =>
    check({
      address: clientAddress(
        remoteAddress(c),
        c.req.header("x-forwarded-for"),
        trusted,
      ),
      authorization: c.req.header("authorization"),
    });
}

/** The middleware guarding `/metrics` (see the module comment). */
export function metricsAccess(
  opts: MetricsAccessOptions = {},
): MiddlewareHandler {
  const check = scrapeCheck(opts);
  return async (c, next) => {
    const verdict = await check(c);
    if (verdict.ok) return await next();
    if (verdict.status === 401) {
      c.header("WWW-Authenticate", 'Bearer realm="ucloud-metrics"');
      return errorJson(c, 401, "Invalid metrics bearer token");
    }
    return errorJson(
      c,
      403,
      "Metrics are served only to the addresses of api.metrics.allow or with the bearer token of api.metrics.bearerTokenFile",
    );
  };
}
