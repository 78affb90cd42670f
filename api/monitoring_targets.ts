/**
 * What Prometheus scrapes, kept from watches of etcd: the API replicas
 * (`apimetrics/<replica>`, each bound to its process's lease, so a stopped
 * replica drops out) and the workers (`host/<name>` documents with
 * `metrics.url`; a host stays a target while its document exists, dead or
 * alive, so its `up` turns 0 when it dies). Each prefix is listed once and
 * then followed (core/watch.ts; a watch error lists again): answering
 * Prometheus' discovery reads memory, not etcd.
 *
 * @example
 * ```ts
 * const targets = MonitoringTargets.start(store, { log });
 * await targets.waitReady(2000);
 * targets.groups(); // [{ targets: ["127.0.0.1:8750"], labels: { job: "ucloud-api", ... } }]
 * await targets.close();
 * ```
 */
import type { z } from "zod";
import { idOf, keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { ApiMetrics, Host } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { decodeRaw, listRaw, type RawKv, watchPrefix } from "../core/watch.ts";

/** The job label of API replicas. */
export const API_JOB = "ucloud-api";
/** The job label of workers. */
export const WORKER_JOB = "ucloud-worker";

/** One entry of Prometheus' http_sd JSON. */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/**
 * The http_sd group of one `/metrics` URL: `host:port` (the scheme's port
 * when the URL names none), its path and scheme as `__metrics_path__` and
 * `__scheme__`, plus `labels`. Null for a URL Prometheus cannot scrape.
 */
export function targetOf(
  url: string,
  labels: Record<string, string>,
): TargetGroup | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  const scheme = u.protocol.slice(0, -1);
  if (scheme !== "http" && scheme !== "https") return null;
  const port = u.port || (scheme === "https" ? "443" : "80");
  return {
    targets: [`${u.hostname}:${port}`],
    labels: {
      __metrics_path__: u.pathname + u.search,
      __scheme__: scheme,
      ...labels,
    },
  };
}

/**
 * The http_sd groups of the announced API replicas and the hosts that name
 * a `metrics.url`, API replicas first, each by id.
 */
export function targetGroups(
  apis: Map<string, ApiMetrics>,
  hosts: Map<string, Host>,
): TargetGroup[] {
  const byKey = <T>(m: Map<string, T>) =>
    [...m].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  const groups: (TargetGroup | null)[] = [];
  for (const [replica, a] of byKey(apis)) {
    const host = URL.canParse(a.url)
      ? new URL(a.url).hostname.replace(/^\[(.*)\]$/, "$1")
      : "";
    groups.push(targetOf(a.url, { job: API_JOB, host, replica }));
  }
  for (const [name, h] of byKey(hosts)) {
    if (h.metrics) {
      groups.push(targetOf(h.metrics.url, { job: WORKER_JOB, host: name }));
    }
  }
  return groups.filter((g): g is TargetGroup => g !== null);
}

/**
 * The http_sd groups read from etcd now (both prefixes in pages), for an
 * API built without a {@linkcode MonitoringTargets} watch.
 */
export async function listTargetGroups(store: Store): Promise<TargetGroup[]> {
  const read = async <T>(prefix: string, schema: z.ZodType<T>) => {
    const out = new Map<string, T>();
    for (const kv of (await listRaw(store, prefix)).items) {
      const v = decodeRaw(kv, schema);
      if (v) out.set(idOf(kv.key), v);
    }
    return out;
  };
  return targetGroups(
    await read(keys.apiMetricsAll, ApiMetrics),
    await read(keys.hosts, Host),
  );
}

export interface MonitoringTargetsOptions {
  log?: Logger;
}

export class MonitoringTargets {
  readonly #stop = new AbortController();
  readonly #apis = new Map<string, ApiMetrics>();
  readonly #hosts = new Map<string, Host>();
  readonly #watches: Promise<void>[];
  readonly #pending = new Set<string>([keys.apiMetricsAll, keys.hosts]);
  readonly #ready: Promise<void>;
  #resolve!: () => void;

  private constructor(store: Store, opts: MonitoringTargetsOptions) {
    this.#ready = new Promise<void>((r) => this.#resolve = r);
    this.#watches = [
      this.#follow(store, keys.apiMetricsAll, this.#apis, ApiMetrics, opts),
      this.#follow(store, keys.hosts, this.#hosts, Host, opts),
    ];
  }

  #follow<T>(
    store: Store,
    prefix: string,
    into: Map<string, T>,
    schema: z.ZodType<T>,
    opts: MonitoringTargetsOptions,
  ): Promise<void> {
    const set = (kv: RawKv) => {
      const v = decodeRaw(kv, schema);
      if (v) into.set(idOf(kv.key), v);
      else into.delete(idOf(kv.key));
    };
    return watchPrefix(store, prefix, {
      signal: this.#stop.signal,
      log: opts.log,
      onReset: (items) => {
        into.clear();
        for (const kv of items) set(kv);
        this.#pending.delete(prefix);
        if (this.#pending.size === 0) this.#resolve();
      },
      onEvent: (ev) => {
        if (ev.type === "put") set(ev);
        else into.delete(idOf(ev.key));
      },
    });
  }

  /** Lists and watches `apimetrics/` and `host/` of `store` until `close()`. */
  static start(
    store: Store,
    opts: MonitoringTargetsOptions = {},
  ): MonitoringTargets {
    return new MonitoringTargets(store, opts);
  }

  /** Waits at most `ms` for both first listings; true when they are done. */
  async waitReady(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#ready,
      new Promise<void>((r) => timer = setTimeout(r, ms)),
    ]);
    clearTimeout(timer);
    return this.#pending.size === 0;
  }

  /** The current http_sd groups (see {@linkcode targetGroups}). */
  groups(): TargetGroup[] {
    return targetGroups(this.#apis, this.#hosts);
  }

  /** Stops the watches. */
  async close(): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled(this.#watches);
  }
}
