/**
 * Reporting of documents a reader cannot read (not JSON, or failing the
 * schema: corrupt, or written by a newer ucloud with a change this version
 * does not understand): a counter by key prefix, and one structured log
 * line per document revision. The counter lives in no registry; every
 * process that serves metrics registers it (api/metrics.ts), so the API
 * and the workers count into the same place without core importing them.
 *
 * @example
 * ```ts
 * reportUnreadable("vm/vm-1", "not JSON", "42");
 * registry.registerMetric(unreadableDocuments);
 * ```
 */
import { Counter } from "prom-client";
import { logger } from "./log.ts";

/** The counter's metric name. */
export const UNREADABLE_METRIC = "ucloud_store_unreadable_documents_total";

/** Reads that skipped or refused an unreadable document, by key prefix. */
export const unreadableDocuments = new Counter({
  name: UNREADABLE_METRIC,
  help:
    "Reads of documents that are not JSON or fail the schema (skipped in listings and watches), by key prefix",
  labelNames: ["prefix"] as const,
  registers: [],
});

const log = logger({ component: "store" });

/** Documents already logged, as key -> mod revision (bounded). */
const logged = new Map<string, string>();
const LOGGED_MAX = 1024;

/**
 * Counts an unreadable document and logs it once per revision. `prefix` is
 * the key's first segment (`vm`, `task`, ...), so label values stay few.
 */
export function reportUnreadable(
  key: string,
  reason: string,
  modRevision = "",
): void {
  const prefix = key.split("/")[0];
  unreadableDocuments.inc({ prefix });
  if (logged.get(key) === modRevision) return;
  if (logged.size >= LOGGED_MAX) logged.clear();
  logged.set(key, modRevision);
  log.warn("unreadable document", {
    key,
    prefix,
    reason,
    ...(modRevision ? { modRevision } : {}),
  });
}
