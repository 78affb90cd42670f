/**
 * etcd and workers on a multi-host test network (`netns.ts`): etcd stays in
 * the root namespace and also listens on the bridge address
 * (`serveEtcdOn`); a worker runs in its host's namespace
 * (`startWorkerIn`), and the qemu processes it starts inherit that
 * namespace.
 *
 * @example
 * ```ts
 * const net = await createHostNet(["h1", "h2"]);
 * const cluster = await startCluster();
 * try {
 *   await serveEtcdOn(cluster, net);
 *   await startWorkerIn(cluster, net, { name: "h1" });
 * } finally {
 *   await cluster.stop();
 *   await net.destroy();
 * }
 * ```
 */
import { startEtcd } from "../../core/etcd_server.ts";
import { type Cluster, type HostSpec, WorkerProc } from "./cluster.ts";
import type { HostNet, NetHost } from "./netns.ts";

const etcdListeners = new WeakMap<Cluster, string>();

/**
 * Restarts the cluster's etcd (same port and data) so that it also listens
 * on `http://[<net.etcdAddress>]:<port>` (`startEtcd`'s `extraListen`);
 * returns that endpoint. `startCluster` has no such option yet, hence the
 * restart (about 0.1 s). `cluster.restartEtcd` is replaced on this instance
 * so later restarts keep the address.
 */
export async function serveEtcdOn(
  cluster: Cluster,
  net: HostNet,
): Promise<string> {
  const endpoint = `http://[${net.etcdAddress}]:${cluster.etcd.port}`;
  if (etcdListeners.get(cluster) === endpoint) return endpoint;
  const start = () =>
    startEtcd({
      dataDir: cluster.etcd.dataDir,
      port: cluster.etcd.port,
      peerPort: cluster.etcd.peerPort,
      extraListen: [net.etcdAddress],
    });
  await cluster.etcd.stop();
  cluster.etcd = await start();
  cluster.restartEtcd = async (downMs = 0) => {
    await cluster.etcd.stop();
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    cluster.etcd = await start();
  };
  etcdListeners.set(cluster, endpoint);
  return endpoint;
}

// -------------------------------------------------------------- workers

/**
 * A worker process running in a host's namespace; see
 * {@linkcode startWorkerIn}. Same interface as `WorkerProc` (start, kill,
 * log, pid, stateDir, killFencer); the host's fencer, started by the worker,
 * runs in the namespace too.
 */
export class NsWorkerProc extends WorkerProc {
  constructor(cluster: Cluster, readonly net: HostNet, spec: HostSpec) {
    super(cluster, spec);
    net.host(spec.name);
  }

  get host(): NetHost {
    return this.net.host(this.spec.name);
  }

  /** Starts the worker through `ip netns exec <ns>`, etcd on the bridge. */
  override async start(): Promise<void> {
    if (!etcdListeners.get(this.cluster)) {
      throw new Error(
        "etcd does not listen on the host network: call serveEtcdOn(cluster, net) first",
      );
    }
    await super.start();
  }

  protected override launcher(): string[] {
    return ["ip", "netns", "exec", this.host.ns, "bash"];
  }

  protected override workerEnv(): Record<string, string> {
    return {
      ...super.workerEnv(),
      UCLOUD_ETCD: etcdListeners.get(this.cluster)!,
    };
  }
}

/**
 * Starts a worker in host `spec.name`'s namespace, registered in
 * `cluster.workers` (so `cluster.stop()` kills it and its fencer, and tests
 * print its log). The state dir is `WorkerProc`'s per-host one, with the
 * cluster's images linked in. The cluster's etcd must listen on the bridge:
 * {@linkcode serveEtcdOn}.
 */
export async function startWorkerIn(
  cluster: Cluster,
  net: HostNet,
  spec: HostSpec,
): Promise<NsWorkerProc> {
  const w = new NsWorkerProc(cluster, net, spec);
  cluster.workers.set(spec.name, w);
  await w.start();
  return w;
}
