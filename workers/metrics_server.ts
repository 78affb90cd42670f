/**
 * The worker's `GET /metrics` listener (config `worker.metrics`,
 * core/config_metrics.ts): on this host's address (`listen`, else the
 * underlay address, else the first address the host reports, else `::1`)
 * and `port` (0: any free one), answering the addresses of `allow` and
 * scrapers with the bearer token of `bearerTokenFile`
 * (core/metrics_access.ts, as the API's `/metrics`); everyone else gets
 * 403 (401 for a wrong token). `url` is what the host document announces
 * (`host/<name>.metrics.url`, for discovery). A port that cannot be taken
 * is logged and the worker runs without metrics (`start` resolves null).
 *
 * @example
 * ```ts
 * const server = MetricsServer.start({ config: c.worker.metrics, metrics, log });
 * console.log(server?.url); // "http://[2001:db8::1]:9469/metrics"
 * await server?.close();
 * ```
 */
import type { WorkerMetricsConfig } from "../core/config_metrics.ts";
import type { Logger } from "../core/log.ts";
import { scrapeAccess } from "../core/metrics_access.ts";
import { hostAddresses } from "./host_info.ts";
import type { WorkerMetrics } from "./metrics.ts";

/** Options of {@linkcode MetricsServer.start}. */
export interface MetricsServerOptions {
  config: WorkerMetricsConfig;
  metrics: WorkerMetrics;
  /** This host's underlay address, if it has one. */
  underlay?: string;
  log: Logger;
}

function refusal(status: 401 | 403): Response {
  const [code, message] = status === 401
    ? ["unauthorized", "Invalid metrics bearer token"]
    : [
      "forbidden",
      "Metrics are served only to the addresses of worker.metrics.allow or with the bearer token of worker.metrics.bearerTokenFile",
    ];
  const headers: Record<string, string> = {
    "content-type": "application/json",
  };
  if (status === 401) {
    headers["www-authenticate"] = 'Bearer realm="ucloud-metrics"';
  }
  return new Response(JSON.stringify({ error: { code, message } }), {
    status,
    headers,
  });
}

/** The address the listener takes (see the module comment). */
export function metricsAddress(
  listen: string | undefined,
  underlay: string | undefined,
  addresses: string[] = hostAddresses(),
): string {
  return listen ?? underlay ?? addresses[0] ?? "::1";
}

/** See the module comment. */
export class MetricsServer {
  readonly url: string;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, url: string) {
    this.#server = server;
    this.url = url;
  }

  /** Listens; null when disabled or the address cannot be taken. */
  static start(o: MetricsServerOptions): MetricsServer | null {
    if (!o.config.enabled) return null;
    const log = o.log.child({ component: "metrics" });
    const check = scrapeAccess(o.config, log);
    const hostname = metricsAddress(o.config.listen, o.underlay);
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname,
        port: o.config.port,
        onListen: () => {},
      }, async (req, info) => {
        const path = new URL(req.url).pathname;
        if (path !== "/metrics") {
          return new Response("Not found", { status: 404 });
        }
        if (req.method !== "GET" && req.method !== "HEAD") {
          return new Response("Method not allowed", { status: 405 });
        }
        const verdict = await check({
          address: info.remoteAddr.hostname,
          authorization: req.headers.get("authorization") ?? undefined,
        });
        if (!verdict.ok) return refusal(verdict.status);
        try {
          const text = await o.metrics.scrape();
          return new Response(req.method === "HEAD" ? null : text, {
            headers: { "content-type": o.metrics.contentType },
          });
        } catch (err) {
          log.error("metrics scrape failed", { error: String(err) });
          return new Response("Scrape failed", { status: 500 });
        }
      });
    } catch (err) {
      log.error("cannot serve /metrics: the worker runs without it", {
        address: hostname,
        port: o.config.port,
        error: String(err),
      });
      return null;
    }
    const { port } = server.addr;
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    const url = `http://${host}:${port}/metrics`;
    log.info("serving /metrics", { url });
    return new MetricsServer(server, url);
  }

  /** Stops listening; scrapes in flight finish first. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}
