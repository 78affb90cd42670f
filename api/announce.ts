/**
 * An API replica announces its `/metrics` for Prometheus' discovery
 * (api/monitoring_targets.ts): `apimetrics/<replica>` = `{ url }`, bound to
 * a lease of this process (core/session.ts), so the key goes when the
 * process stops (revoked at `close()`, expired after a crash). A lost
 * lease (etcd away longer than the TTL) is granted anew and the key
 * written again. The replica id is the announced address, so a restarted
 * replica replaces its own key instead of adding a second target.
 *
 * @example
 * ```ts
 * const a = ApiAnnouncement.start(store, "http://127.0.0.1:8750/metrics", { log });
 * await a.close();
 * ```
 */
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import type { ApiMetrics } from "../core/schemas.ts";
import { Session } from "../core/session.ts";
import type { Store } from "../core/store.ts";
import { sleep } from "../core/watch.ts";

/** The lease TTL of the announcement: how long a crashed replica stays listed. */
export const ANNOUNCE_TTL_SECONDS = 10;

/** The replica id of a metrics URL: its host and port, e.g. `127.0.0.1-8750`. */
export function replicaId(url: string): string {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, "").replace(/[^a-z0-9.]/gi, "-");
  return `${host}-${u.port || (u.protocol === "https:" ? "443" : "80")}`;
}

/**
 * The metrics URL of an API served on `listen`:`port`: a wildcard address
 * (`0.0.0.0`, `::`) is announced as this machine's host name.
 */
export function metricsUrl(listen: string, port: number): string {
  const host = listen === "0.0.0.0" || listen === "::" || listen === ""
    ? Deno.hostname()
    : listen;
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}/metrics`;
}

export interface AnnounceOptions {
  log?: Logger;
  ttlSeconds?: number;
  /** Wait after a failed grant or write before the next try. */
  retryMs?: number;
}

export class ApiAnnouncement {
  readonly replica: string;
  readonly #stop = new AbortController();
  readonly #loop: Promise<void>;
  #session?: Session;

  private constructor(
    readonly store: Store,
    readonly url: string,
    readonly opts: AnnounceOptions,
  ) {
    this.replica = replicaId(url);
    this.#loop = this.#run();
  }

  /** Writes `apimetrics/<replica>` and keeps it until `close()`. */
  static start(
    store: Store,
    url: string,
    opts: AnnounceOptions = {},
  ): ApiAnnouncement {
    return new ApiAnnouncement(store, url, opts);
  }

  async #run(): Promise<void> {
    const { log, ttlSeconds = ANNOUNCE_TTL_SECONDS, retryMs = 1000 } =
      this.opts;
    const stop = this.#stop.signal;
    const doc: ApiMetrics = { url: this.url };
    while (!stop.aborted) {
      try {
        const s = await Session.open(this.store, {
          ttlSeconds,
          marginMs: 0,
          log,
        });
        this.#session = s;
        if (stop.aborted) break;
        // The key is this replica's own: nothing read decides the write.
        await this.store.txn()
          .put(keys.apiMetrics(this.replica), doc, { lease: s.lease })
          .commit();
        log?.info("api metrics announced", {
          replica: this.replica,
          url: this.url,
          lease: s.lease,
        });
        await untilAborted(s.signal, stop);
        if (!stop.aborted) {
          log?.warn("api metrics announcement lost its lease, renewing", {
            replica: this.replica,
          });
        }
      } catch (err) {
        log?.warn("cannot announce api metrics, retrying", {
          replica: this.replica,
          error: String(err),
        });
      }
      await this.#session?.close();
      this.#session = undefined;
      await sleep(retryMs, stop);
    }
  }

  /** Stops and revokes the lease: the replica leaves discovery at once. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    await this.#session?.close();
  }
}

/** Resolves when either signal aborts; leaves no listener on the other. */
function untilAborted(a: AbortSignal, b: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      a.removeEventListener("abort", done);
      b.removeEventListener("abort", done);
      resolve();
    };
    if (a.aborted || b.aborted) return resolve();
    a.addEventListener("abort", done, { once: true });
    b.addEventListener("abort", done, { once: true });
  });
}
