/**
 * etcd's database size for `/metrics`: `ucloud_etcd_db_size_bytes{member}`
 * (the file), `ucloud_etcd_db_size_in_use_bytes{member}` and
 * `ucloud_etcd_db_quota_bytes` (`maintenance.embeddedEtcd.quotaBytes`: the
 * embedded etcd's `--quota-backend-bytes`; an operator of an external
 * cluster sets it to that cluster's). The alert `UcloudEtcdDbNearQuota`
 * (monitoring/rules.yml) divides the two. Each member's status is read
 * every `everyMs` (a status call, not a range), so a scrape reads memory;
 * a member that did not answer keeps its last figures.
 *
 * @example
 * ```ts
 * const size = EtcdSize.start(store, { quotaBytes: 2 * 1024 ** 3 });
 * for (const m of size.metrics) registry.registerMetric(m);
 * await size.close();
 * ```
 */
import { Gauge, type Metric } from "prom-client";
import { memberStatuses } from "../core/etcd_members.ts";
import type { Logger } from "../core/log.ts";
import type { Store } from "../core/store.ts";

export interface EtcdSizeOptions {
  quotaBytes: number;
  /** How often the members' status is read, ms. Default 30 s. */
  everyMs?: number;
  log?: Logger;
}

export class EtcdSize {
  readonly metrics: Metric[];
  readonly #size: Gauge;
  readonly #inUse: Gauge;
  #timer?: ReturnType<typeof setTimeout>;
  #closed = false;
  #reading?: Promise<void>;

  private constructor(
    readonly store: Store,
    readonly opts: EtcdSizeOptions,
  ) {
    this.#size = new Gauge({
      name: "ucloud_etcd_db_size_bytes",
      help: "Size of each etcd member's database file",
      labelNames: ["member"],
      registers: [],
    });
    this.#inUse = new Gauge({
      name: "ucloud_etcd_db_size_in_use_bytes",
      help: "Bytes of each etcd member's database file in use " +
        "(the rest is freed by a defragmentation)",
      labelNames: ["member"],
      registers: [],
    });
    const quota = new Gauge({
      name: "ucloud_etcd_db_quota_bytes",
      help: "The etcd database quota (--quota-backend-bytes): " +
        "writes fail past it",
      registers: [],
    });
    quota.set(opts.quotaBytes);
    this.metrics = [this.#size, this.#inUse, quota];
  }

  /** Reads the sizes now, then every `everyMs`. */
  static start(store: Store, opts: EtcdSizeOptions): EtcdSize {
    const s = new EtcdSize(store, opts);
    s.#tick();
    return s;
  }

  /** Reads every member's status once (also what the timer does). */
  refresh(): Promise<void> {
    return this.#reading ??= (async () => {
      try {
        for (const m of await memberStatuses(this.store)) {
          if (m.error) continue;
          this.#size.set({ member: m.name }, m.dbSize);
          this.#inUse.set({ member: m.name }, m.dbSizeInUse);
        }
      } catch (err) {
        this.opts.log?.warn("etcd status for /metrics failed", {
          error: String(err),
        });
      } finally {
        this.#reading = undefined;
      }
    })();
  }

  #tick() {
    this.refresh().finally(() => {
      if (this.#closed) return;
      this.#timer = setTimeout(() => this.#tick(), this.opts.everyMs ?? 30_000);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#reading;
  }
}
