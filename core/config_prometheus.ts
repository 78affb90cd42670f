/**
 * The `prometheus` section of the configuration (core/config.ts): the
 * Prometheus `deno task up` starts beside the all-in-one cloud (Debian's
 * `prometheus`; scripts/up_prometheus.ts), with its data in
 * `<stateDir>/prometheus`, its targets from the API's
 * `GET /v1/monitoring/targets` and the rules of monitoring/rules.yml.
 *
 * @example
 * ```ts
 * const p = PrometheusConfig.parse({ port: 9091 });
 * ```
 */
import { z } from "zod";

/** A Prometheus duration: `15s`, `1m30s`, `500ms`. */
const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;

export const PrometheusConfig = z.object({
  /** `up` starts Prometheus (false: it does not). */
  enabled: z.boolean().default(true),
  /** The address its web UI and HTTP API listen on. */
  listen: z.string().min(1).default("127.0.0.1"),
  /**
   * Not Prometheus' usual 9090: the Debian package's own service (started
   * where systemd runs) takes that one.
   */
  port: z.number().int().min(1).max(65535).default(9095),
  /** How often every target is scraped. */
  scrapeInterval: z.string().regex(DURATION).default("15s"),
  /** How often the alert rules are evaluated. */
  evaluationInterval: z.string().regex(DURATION).default("15s"),
});
export type PrometheusConfig = z.infer<typeof PrometheusConfig>;
