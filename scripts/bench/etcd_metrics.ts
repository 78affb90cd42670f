/**
 * What the scale phase (`scale.ts`) reads from outside the processes it
 * measures: etcd's own Prometheus counters (`/metrics` on the client URL,
 * etcd 3.4) and a process's resident memory and CPU time from `/proc`.
 * Counters are read before and after a window; {@linkcode rates} turns the
 * difference into per-second figures for each host.
 *
 * @example
 * ```ts
 * const a = await scrape(etcd.endpoint);
 * await sleep(60_000);
 * const r = rates(a, await scrape(etcd.endpoint), 50);
 * console.log(r.requests, r.sentBytes);
 * ```
 */

/** One scrape: `name{labels}` -> value, and when it was taken. */
export interface Scrape {
  at: number;
  values: Map<string, number>;
}

/** Reads etcd's `/metrics` (served on its client URL). */
export async function scrape(endpoint: string): Promise<Scrape> {
  const res = await fetch(`${endpoint}/metrics`);
  if (!res.ok) throw new Error(`etcd /metrics: ${res.status}`);
  const values = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const cut = line.lastIndexOf(" ");
    values.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return { at: performance.now(), values };
}

/** Sum of the series of `name` whose labels match `labels`, by `by`. */
export function sumBy(
  s: Scrape,
  name: string,
  by?: string,
  labels: Record<string, string> = {},
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [series, v] of s.values) {
    const brace = series.indexOf("{");
    if ((brace < 0 ? series : series.slice(0, brace)) !== name) continue;
    const ls = Object.fromEntries(
      [...series.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).some(([k, want]) => ls[k] !== want)) continue;
    const key = by ? ls[by] ?? "" : "";
    out.set(key, (out.get(key) ?? 0) + v);
  }
  return out;
}

function total(s: Scrape, name: string): number {
  return [...sumBy(s, name).values()].reduce((a, b) => a + b, 0);
}

/** Per-second figures of one window, each divided by the host count. */
export interface EtcdRates {
  seconds: number;
  /** gRPC messages etcd received (unary calls, stream messages), /s/host. */
  requests: number;
  /** The same by gRPC method (`Range`, `Txn`, `LeaseKeepAlive`, ...). */
  byMethod: Record<string, number>;
  /** Bytes etcd sent to / received from its gRPC clients, /s/host. */
  sentBytes: number;
  receivedBytes: number;
  /** MVCC operations (a Txn's reads and writes counted one by one), /s/host. */
  range: number;
  put: number;
  txn: number;
  deleteRange: number;
  /** Watchers and watch streams open at the end of the window (gauges). */
  watchers: number;
  watchStreams: number;
  /** Keys etcd holds at the end (gauge). */
  keys: number;
}

/** The rates between scrapes `a` and `b`, per host of `hosts`. */
export function rates(a: Scrape, b: Scrape, hosts: number): EtcdRates {
  const seconds = (b.at - a.at) / 1000;
  const per = (x: number) => x / seconds / hosts;
  const d = (name: string) => per(total(b, name) - total(a, name));
  const msgs = "grpc_server_msg_received_total";
  const before = sumBy(a, msgs, "grpc_method");
  const byMethod: Record<string, number> = {};
  for (const [m, v] of sumBy(b, msgs, "grpc_method")) {
    const r = per(v - (before.get(m) ?? 0));
    if (r > 0) byMethod[m] = r;
  }
  return {
    seconds,
    requests: d(msgs),
    byMethod,
    sentBytes: d("etcd_network_client_grpc_sent_bytes_total"),
    receivedBytes: d("etcd_network_client_grpc_received_bytes_total"),
    range: d("etcd_mvcc_range_total"),
    put: d("etcd_mvcc_put_total"),
    txn: d("etcd_mvcc_txn_total"),
    deleteRange: d("etcd_mvcc_delete_total"),
    watchers: total(b, "etcd_debugging_mvcc_watcher_total"),
    watchStreams: total(b, "etcd_debugging_mvcc_watch_stream_total"),
    keys: total(b, "etcd_debugging_mvcc_keys_total"),
  };
}

/** Resident memory of `pid` in MiB (`VmRSS` of /proc/<pid>/status). */
export async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1]);
  if (!Number.isFinite(kb)) throw new Error(`no VmRSS for pid ${pid}`);
  return kb / 1024;
}

/** Clock ticks of the kernel's CPU times (`getconf CLK_TCK`, 100 on Linux). */
const TICKS_PER_S = 100;

/** CPU seconds (user + system) `pid` has used so far. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat(5); f[0] is field 3.
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_S;
}
