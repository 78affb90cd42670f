/**
 * The Prometheus of `deno task up` (config `prometheus`,
 * core/config_prometheus.ts): files in `<stateDir>/prometheus`, targets from
 * the API at `apiUrl` (sent the token of `api.metrics.bearerTokenFile` when
 * set; loopback is allowed without it by default), the rules of
 * monitoring/rules.yml. A Prometheus left running from that directory is
 * reused (scripts/prometheus.ts). The worker `up` runs serves its
 * `/metrics` on this host's address, not loopback, so a Prometheus on this
 * machine connects from that address: `upWorkerMetricsEnv` lets this
 * host's own addresses scrape it, besides `worker.metrics.allow`.
 *
 * @example
 * ```ts
 * const prom = await startUpPrometheus(config, "http://127.0.0.1:8750");
 * const workerEnv = upWorkerMetricsEnv(config);
 * await prom.stop();
 * ```
 */
import type { Config } from "../core/config.ts";
import { hostAddresses } from "../workers/host_info.ts";
import { type PrometheusServer, startPrometheus } from "./prometheus.ts";
import { prometheusConfigText } from "./prometheus_config.ts";

/** Where `up` keeps Prometheus' configuration, data and log. */
export function prometheusDir(config: Pick<Config, "stateDir">): string {
  return `${config.stateDir}/prometheus`;
}

/** Starts (or finds running) the Prometheus of the cloud of `config`. */
export function startUpPrometheus(
  config: Pick<Config, "stateDir" | "prometheus" | "api">,
  apiUrl: string,
): Promise<PrometheusServer> {
  const p = config.prometheus;
  return startPrometheus({
    dir: prometheusDir(config),
    listen: p.listen,
    port: p.port,
    config: prometheusConfigText({
      apiUrl,
      tokenFile: config.api.metrics.bearerTokenFile,
      scrapeInterval: p.scrapeInterval,
      evaluationInterval: p.evaluationInterval,
    }),
  });
}

/**
 * The environment of `up`'s worker for its `/metrics`: the allow list of
 * `worker.metrics.allow` and every address of this host (what a scraper
 * on this machine connects from; as trusted as loopback).
 */
export function upWorkerMetricsEnv(
  config: Pick<Config, "worker">,
  addresses: string[] = hostAddresses(),
): Record<string, string> {
  const allow = new Set([...config.worker.metrics.allow, ...addresses]);
  return { UCLOUD_WORKER_METRICS_ALLOW: [...allow].join(",") };
}
