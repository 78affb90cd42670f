import { MaintenanceConfig } from "./config_maintenance.ts";

/**
 * Starts a one-node etcd as a child process: the embedded etcd of
 * `deno task up` and the throwaway etcd of every test suite. Short heartbeat
 * and election timeouts let leases of 1 s work (DESIGN.md). It compacts its
 * own history (`--auto-compaction-*`, default: keep 1 h) and has an
 * explicit backend quota (default 2 GiB): the maintenance round
 * (tasks/maintenance_round.ts) defragments it.
 *
 * @example
 * ```ts
 * const etcd = await startEtcd({ dataDir: await Deno.makeTempDir() });
 * console.log(etcd.endpoint);
 * await etcd.stop();
 * ```
 */
export interface EtcdServer {
  endpoint: string;
  port: number;
  peerPort: number;
  dataDir: string;
  pid: number;
  /** Stops the process (SIGTERM, then SIGKILL) and waits for its exit. */
  stop(signal?: Deno.Signal): Promise<void>;
  /** Resolves when the process exits. */
  exited: Promise<Deno.CommandStatus>;
}

export interface EtcdOptions {
  dataDir: string;
  /** Client port; 0 picks a free loopback port. */
  port?: number;
  /** Peer port; 0 picks one. Pass the old one to restart on the same data. */
  peerPort?: number;
  binary?: string;
  /**
   * More addresses to serve clients on besides 127.0.0.1 (e.g. a test
   * bridge's IPv6 address), same port.
   */
  extraListen?: string[];
  /** Where etcd's own log goes; default `<dataDir>/etcd.log`. */
  logFile?: string;
  /**
   * History etcd compacts on its own: `periodic` keeps `retention` of time
   * (`1h`, `5s`), `revision` keeps that many revisions. Default 1 h.
   */
  compaction?: { mode: "periodic" | "revision"; retention: string };
  /** `--quota-backend-bytes`: past it writes fail (NOSPACE). Default 2 GiB. */
  quotaBytes?: number;
  signal?: AbortSignal;
}

/** The defaults of `maintenance.embeddedEtcd` (core/config_maintenance.ts). */
const EMBEDDED = MaintenanceConfig.shape.embeddedEtcd.parse(undefined);

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, {
      signal: AbortSignal.timeout(500),
    });
    const body = await res.json();
    return body.health === "true";
  } catch {
    return false;
  }
}

/** Starts etcd and resolves once `/health` says true (at most 15 s). */
export async function startEtcd(opts: EtcdOptions): Promise<EtcdServer> {
  // A port picked by freePort() can be taken before etcd binds it: with
  // picked ports, try again with new ones.
  const picked = !opts.port || !opts.peerPort;
  for (let attempt = 1;; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (
        !picked || attempt >= 5 || !/address already in use/.test(String(err))
      ) {
        throw err;
      }
    }
  }
}

async function startOnce(opts: EtcdOptions): Promise<EtcdServer> {
  const port = opts.port || freePort();
  const peer = opts.peerPort || freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const clientUrls = [
    endpoint,
    ...(opts.extraListen ?? []).map((a) =>
      `http://${a.includes(":") ? `[${a}]` : a}:${port}`
    ),
  ].join(",");
  await Deno.mkdir(opts.dataDir, { recursive: true });
  const logFile = opts.logFile ?? `${opts.dataDir}/etcd.log`;
  const compaction = opts.compaction ??
    { mode: EMBEDDED.compactionMode, retention: EMBEDDED.compactionRetention };
  const child = new Deno.Command(opts.binary ?? "etcd", {
    args: [
      "--name=ucloud",
      `--data-dir=${opts.dataDir}/data`,
      `--listen-client-urls=${clientUrls}`,
      `--advertise-client-urls=${clientUrls}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=ucloud=http://127.0.0.1:${peer}`,
      "--heartbeat-interval=50",
      "--election-timeout=500",
      `--auto-compaction-mode=${compaction.mode}`,
      `--auto-compaction-retention=${compaction.retention}`,
      `--quota-backend-bytes=${opts.quotaBytes ?? EMBEDDED.quotaBytes}`,
      // Leases keep their remaining TTL over a restart or a new leader
      // (checkpointed every 5 min); without it etcd 3.4 grants every lease
      // its whole TTL again, and the 24 h leases of idem/ and failover/
      // never end on an etcd restarted daily. Measured with 3.4.23: a
      // 3600 s lease with 3269 s left had 3298 s after a restart with the
      // flag, 3598 s without. (It panics with the capnslog logger: zap.)
      "--experimental-enable-lease-checkpoint",
      "--log-level=warn",
      "--logger=zap",
      `--log-outputs=${logFile}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const exited = child.status;
  let done = false;
  exited.then(() => done = true);
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (done) return;
    try {
      child.kill(signal);
    } catch { /* already gone */ }
    const t = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await exited;
    clearTimeout(t);
  };
  const deadline = Date.now() + 15_000;
  while (!(await healthy(endpoint))) {
    if (done || Date.now() > deadline || opts.signal?.aborted) {
      await stop("SIGKILL");
      const tail = (await Deno.readTextFile(logFile).catch(() => ""))
        .split("\n").slice(-10).join("\n");
      throw new Error(`Cannot start etcd on ${endpoint}: ${tail}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    endpoint,
    port,
    peerPort: peer,
    dataDir: opts.dataDir,
    pid: child.pid,
    stop,
    exited,
  };
}
