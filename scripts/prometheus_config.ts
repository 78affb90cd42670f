/**
 * The Prometheus configuration of a ucloud cloud: one scrape job whose
 * targets come from the API's `GET /v1/monitoring/targets` (http_sd: every
 * API replica and worker, with their `job`, `host` and metrics path), the
 * alert rules of monitoring/rules.yml, and the bearer token (when given)
 * sent both to discovery and to every scrape. Pure: the text is JSON,
 * which Prometheus reads as YAML.
 *
 * @example
 * ```ts
 * const text = prometheusConfigText({
 *   apiUrl: "http://127.0.0.1:8750",
 *   rulesFile: "/srv/ucloud/monitoring/rules.yml",
 * });
 * await Deno.writeTextFile("prometheus.yml", text);
 * ```
 */

/** monitoring/rules.yml of this checkout. */
export const RULES_FILE =
  new URL("../monitoring/rules.yml", import.meta.url).pathname;

export interface PrometheusConfigOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:8750`. */
  apiUrl: string;
  /** The alert rules (absolute path); default monitoring/rules.yml. */
  rulesFile?: string;
  /** A file with the bearer token of `api.metrics.bearerTokenFile`. */
  tokenFile?: string;
  /** How often every target is scraped (Prometheus duration). */
  scrapeInterval?: string;
  /** How often rules are evaluated. */
  evaluationInterval?: string;
  /** How often the targets are asked for again. */
  refreshInterval?: string;
}

/** The configuration as an object (see the module comment). */
export function prometheusConfig({
  apiUrl,
  rulesFile = RULES_FILE,
  tokenFile,
  scrapeInterval = "15s",
  evaluationInterval = "15s",
  // Cheap: the API answers from memory (api/monitoring_targets.ts).
  refreshInterval = "10s",
}: PrometheusConfigOptions): Record<string, unknown> {
  const authorization = tokenFile === undefined
    ? {}
    : { authorization: { type: "Bearer", credentials_file: tokenFile } };
  return {
    global: {
      scrape_interval: scrapeInterval,
      evaluation_interval: evaluationInterval,
    },
    rule_files: [rulesFile],
    scrape_configs: [{
      // The targets set `job` (ucloud-api, ucloud-worker): this name is
      // only the default.
      job_name: "ucloud",
      ...authorization,
      http_sd_configs: [{
        url: `${apiUrl.replace(/\/+$/, "")}/v1/monitoring/targets`,
        refresh_interval: refreshInterval,
        ...authorization,
      }],
    }],
  };
}

/** The configuration as the text of a config file. */
export function prometheusConfigText(opts: PrometheusConfigOptions): string {
  return JSON.stringify(prometheusConfig(opts), null, 2) + "\n";
}
