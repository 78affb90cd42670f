/**
 * The worker's Prometheus metrics, in a registry of its own (never
 * prom-client's global one): each scrape gathers one snapshot
 * (workers/metrics_snapshot.ts) and every family (workers/
 * metrics_families.ts) reads its series from it; a series whose source
 * has nothing (a VM without a process, a host without networking) is left
 * out instead of reported as 0. Concurrent scrapes share one gathering.
 *
 * @example
 * ```ts
 * const metrics = new WorkerMetrics({ qmpTimeoutMs: 1000 });
 * metrics.sources.vms = () => vms.items();
 * const text = await metrics.scrape();
 * ```
 */
import { Counter, Gauge, type Metric, Registry } from "prom-client";
import { FAMILIES, type Family } from "./metrics_families.ts";
import {
  gather,
  type MetricsSources,
  type Snapshot,
} from "./metrics_snapshot.ts";

/** See the module comment. */
export class WorkerMetrics {
  readonly registry = new Registry();
  /** What scrapes read; the worker fills it in as its parts start. */
  readonly sources: MetricsSources;
  readonly #errors: Counter<"source">;
  #snap?: Snapshot;
  #running?: Promise<string>;

  constructor(sources: MetricsSources) {
    this.sources = sources;
    this.#errors = new Counter({
      name: "ucloud_scrape_errors_total",
      help:
        "Sources a scrape of this worker's /metrics had to leave out (qmp: a VM's QMP did not answer in time; links, nft, loadavg, meminfo, stat)",
      labelNames: ["source"] as const,
      registers: [this.registry],
    });
    const seconds = () => this.#snap?.seconds ?? 0;
    new Gauge({
      name: "ucloud_scrape_collect_seconds",
      help: "How long this scrape took to gather its data",
      registers: [this.registry],
      collect() {
        this.set(seconds());
      },
    });
    for (const f of FAMILIES) {
      this.registry.registerMetric(this.#metric(f));
    }
  }

  /** The content type of {@linkcode scrape}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Gathers a snapshot and renders every family (the text format). */
  scrape(): Promise<string> {
    this.#running ??= this.#scrape().finally(() => this.#running = undefined);
    return this.#running;
  }

  async #scrape(): Promise<string> {
    const snap = await gather(this.sources);
    for (const source of snap.errors) this.#errors.inc({ source });
    this.#snap = snap;
    try {
      return await this.registry.metrics();
    } finally {
      this.#snap = undefined;
    }
  }

  /** A family as the registry renders it: exactly the series it reads. */
  #metric(f: Family): Metric {
    const get = () => {
      const s = this.#snap;
      const values = s
        ? [...f.read(s)].map(([labels, value]) => ({ labels, value }))
        : [];
      return Promise.resolve({
        name: f.name,
        help: f.help,
        type: f.type,
        values,
        aggregator: "sum",
      });
    };
    return {
      name: f.name,
      help: f.help,
      type: f.type,
      get,
    } as unknown as Metric;
  }
}
