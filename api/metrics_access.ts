/**
 * Who may scrape `GET /metrics` (config `api.metrics`, core/config_metrics.ts):
 * a client whose address is in `allow`, or one that sends the bearer token
 * of `bearerTokenFile`. Everyone else gets 403 (401 for a wrong token), and
 * a request with no address (no network peer) is refused too.
 *
 * @example
 * ```ts
 * app.use("/metrics", metricsAccess({ allow: ["127.0.0.1", "::1"] }));
 * ```
 */
import type { Context, MiddlewareHandler } from "hono";
import { timingSafeEqual } from "node:crypto";
import {
  addressIn,
  clientAddress,
  parseTrustedProxies,
} from "../core/client_address.ts";
import type { MetricsConfig } from "../core/config_metrics.ts";
import { type Logger, logger } from "../core/log.ts";
import { errorJson } from "./errors.ts";

/** The shortest bearer token `bearerTokenFile` may hold. */
export const MIN_METRICS_TOKEN = 16;

export interface MetricsAccessOptions extends Partial<MetricsConfig> {
  /** `api.trustedProxies`: whose `X-Forwarded-For` names the client. */
  trustedProxies?: readonly string[];
  log?: Logger;
}

async function readToken(file: string, log: Logger): Promise<string | null> {
  try {
    const token = (await Deno.readTextFile(file)).trim();
    if (token.length >= MIN_METRICS_TOKEN) return token;
    log.error("metrics token file holds too short a token", {
      file,
      min: MIN_METRICS_TOKEN,
    });
  } catch (err) {
    log.error("cannot read the metrics token file", {
      file,
      error: (err as Error).message,
    });
  }
  return null;
}

function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function remoteAddress(c: Context): string | undefined {
  const env = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return env?.remoteAddr?.hostname;
}

/**
 * Why a scrape is refused: `token` (it sent a bearer token that is not the
 * metrics token) or `address` (no token, and its address is not allowed).
 */
export type ScrapeRefusal = "token" | "address";

/**
 * The rule of the module comment as a check of one request: null when it
 * may scrape, else why not. Also guards Prometheus' discovery
 * (api/monitoring.ts), which falls back to an admin's login.
 */
export function scrapeCheck({
  allow = ["127.0.0.1", "::1"],
  bearerTokenFile,
  trustedProxies = [],
  log = logger({ component: "api" }),
}: MetricsAccessOptions = {}): (
  c: Context,
) => Promise<{ refused: ScrapeRefusal | null; address?: string }> {
  const allowed = parseTrustedProxies(allow);
  const trusted = parseTrustedProxies(trustedProxies);
  return async (c) => {
    const address = clientAddress(
      remoteAddress(c),
      c.req.header("x-forwarded-for"),
      trusted,
    );
    const authz = c.req.header("authorization");
    if (authz !== undefined && bearerTokenFile !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authz);
      const token = await readToken(bearerTokenFile, log);
      const ok = m !== null && token !== null && sameToken(m[1], token);
      return { refused: ok ? null : "token", address };
    }
    if (address !== undefined && addressIn(address, allowed)) {
      return { refused: null, address };
    }
    return { refused: "address", address };
  };
}

/** The middleware guarding `/metrics` (see the module comment). */
export function metricsAccess(
  opts: MetricsAccessOptions = {},
): MiddlewareHandler {
  const log = opts.log ?? logger({ component: "api" });
  const check = scrapeCheck({ ...opts, log });
  return async (c, next) => {
    const { refused, address } = await check(c);
    if (refused === null) return await next();
    log.warn("metrics scrape refused", { address, reason: refused });
    if (refused === "token") {
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
