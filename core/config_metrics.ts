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

/**
 * The `worker.metrics` section: the worker's own `GET /metrics`
 * (workers/metrics_server.ts), who may scrape it (as `api.metrics`), and
 * where it listens. The URL it serves is announced in the host document
 * (`host/<name>.metrics.url`) for discovery.
 */
export const WorkerMetricsConfig = MetricsConfig.extend({
  /** Serve `/metrics` at all. */
  enabled: z.boolean().default(true),
  /** TCP port; 0: any free port (the announced URL names the one taken). */
  port: z.number().int().min(0).max(65535).default(9469),
  /**
   * The address to listen on; absent: the host's underlay address, else
   * the first address the host reports, else `::1`.
   */
  listen: z.string().refine((a) => !a.includes("/") && addressOk(a), {
    message: "must be an IPv4 or IPv6 address",
  }).optional(),
  /** How long a scrape waits for one VM's QMP answer before it skips it. */
  qmpTimeoutMs: z.number().int().min(50).max(10_000).default(1000),
});
export type WorkerMetricsConfig = z.infer<typeof WorkerMetricsConfig>;

/**
 * `worker.metrics` from the environment: `UCLOUD_WORKER_METRICS_PORT`,
 * `_LISTEN`, `_ALLOW` (comma list), `_TOKEN_FILE`, `_ENABLED` (1/0);
 * undefined when none is set.
 */
export function workerMetricsEnv(
  env: (name: string) => string | undefined,
): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  const v = (n: string) => env(`UCLOUD_WORKER_METRICS_${n}`) || undefined;
  const port = v("PORT"), listen = v("LISTEN"), allow = v("ALLOW");
  const token = v("TOKEN_FILE"), enabled = v("ENABLED");
  if (port !== undefined) out.port = Number(port);
  if (listen !== undefined) out.listen = listen;
  if (allow !== undefined) {
    out.allow = allow.split(",").map((p) => p.trim()).filter(Boolean);
  }
  if (token !== undefined) out.bearerTokenFile = token;
  if (enabled !== undefined) {
    out.enabled = ["1", "true", "on"].includes(enabled);
  }
  return Object.keys(out).length ? out : undefined;
}
