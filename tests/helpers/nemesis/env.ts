/**
 * The system under test of a nemesis run: hosts as network namespaces on
 * one bridge (tests/helpers/netns.ts), a real etcd listening on the bridge,
 * one worker process per host with the sim or the qemu VM driver (qemu
 * under TCG booting the tiny test guest, see profile.ts), and the API as a
 * process on a loopback port. `stop()` tears everything down (processes,
 * namespaces, temp dirs) and may be called more than once.
 *
 * The harness keeps no etcd client open during a run (`cluster.store`,
 * which connects when made, is closed at once): Deno 2.9's node:http2
 * under the etcd client can abort the whole process when etcd restarts
 * under an open connection (`nghttp2_session.c: find_stream_on_goaway_func: Assertion
 * stream->closed_next == NULL failed`), and the harness must outlive the
 * faults it injects. `connect()` gives a client for before and after.
 *
 * @example
 * ```ts
 * const env = await startNemesisEnv({ hosts: 3, ttlSeconds: 2 });
 * try {
 *   await fetch(`${env.api.url}/v1/vms`);
 * } finally {
 *   await env.stop();
 * }
 * ```
 */
import { keys } from "../../../core/keys.ts";
import { Store } from "../../../core/store.ts";
import { type Cluster, startCluster, waitFor } from "../cluster.ts";
import { createHostNet, type HostNet } from "../netns.ts";
import { type NsWorkerProc, serveEtcdOn, startWorkerIn } from "../ns_worker.ts";
import { ApiProc } from "./api_proc.ts";
import type { VmDriver } from "./procs.ts";
import { type DriverProfile, PROFILES } from "./profile.ts";

export interface NemesisEnvOptions {
  /** Number of hosts, named h1..hN (default 3). */
  hosts?: number;
  /** Lease TTL of the workers (default 2 s). */
  ttlSeconds?: number;
  /** Keep the run's directory (logs, etcd data) after `stop()`. */
  keep?: boolean;
  /** The VM driver and its knobs (default `PROFILES.sim`). */
  profile?: DriverProfile;
}

export interface NemesisEnv {
  cluster: Cluster;
  net: HostNet;
  api: ApiProc;
  hosts: string[];
  workers: Map<string, NsWorkerProc>;
  /** `<dir>/hosts`: each host's state dir is `<hostsRoot>/<host>`. */
  hostsRoot: string;
  /** The workers' VM driver (how the sampler finds VM processes). */
  driver: VmDriver;
  ttlMs: number;
  /** The run's directory (worker and API logs, etcd data). */
  dir: string;
  /**
   * A new etcd client (close it after use). The harness holds none while
   * faults run: an idle client of this process that sees etcd restart can
   * crash it (see `connect` in the module comment).
   */
  connect(): Store;
  stop(): Promise<void>;
}

/** Starts etcd, the hosts with their workers and the API. */
export async function startNemesisEnv(
  opts: NemesisEnvOptions = {},
): Promise<NemesisEnv> {
  const hosts = Array.from({ length: opts.hosts ?? 3 }, (_, i) => `h${i + 1}`);
  const ttlSeconds = opts.ttlSeconds ?? 2;
  const profile = opts.profile ?? PROFILES.sim;
  const cluster = await startCluster({
    leaseTtlSeconds: ttlSeconds,
    guest: profile.guest,
  });
  cluster.env.UCLOUD_DRIVER = profile.driver;
  Object.assign(cluster.env, profile.workerEnv);
  cluster.store.close(); // see the module comment; stop() closes it again
  let net: HostNet | undefined;
  let api: ApiProc | undefined;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const errors: unknown[] = [];
    const attempt = async (f: () => Promise<void>) => {
      try {
        await f();
      } catch (err) {
        errors.push(err);
      }
    };
    await attempt(async () => await api?.kill());
    await attempt(async () => {
      // Cluster.stop() keeps the directory when this is set.
      if (opts.keep) Deno.env.set("UCLOUD_KEEP_TEST_DIRS", "1");
      await cluster.stop();
    });
    await attempt(async () => await net?.destroy());
    if (errors.length) {
      throw new AggregateError(errors, "Cannot tear the nemesis cluster down");
    }
  };
  try {
    net = await createHostNet(hosts);
    await serveEtcdOn(cluster, net);
    const workers = new Map<string, NsWorkerProc>();
    for (const name of hosts) {
      workers.set(
        name,
        await startWorkerIn(cluster, net, { name, ...profile.host }),
      );
    }
    const connect = () => Store.connect(cluster.config.etcd);
    const store = connect();
    try {
      await waitFor(
        `${hosts.length} hosts alive`,
        async () => (await store.count(keys.alives)) === hosts.length,
        30_000,
      );
    } finally {
      store.close();
    }
    api = new ApiProc({ env: cluster.env, logFile: `${cluster.dir}/api.log` });
    await api.start();
    return {
      cluster,
      net,
      api,
      hosts,
      workers,
      hostsRoot: `${cluster.dir}/hosts`,
      driver: profile.driver,
      ttlMs: ttlSeconds * 1000,
      dir: cluster.dir,
      connect,
      stop,
    };
  } catch (err) {
    await cluster.printLogs().catch(() => {});
    await stop().catch(() => {});
    throw err;
  }
}
