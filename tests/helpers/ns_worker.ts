/**
 * etcd and workers on a multi-host test network (`netns.ts`): etcd stays in
 * the root namespace and also listens on the bridge address
 * (`serveEtcdOn`); a worker runs in its host's namespace
 * (`startWorkerIn`), and the qemu processes it starts inherit that
 * namespace, as do the DHCP namespaces it makes (`<ns>-ucd…`). Before the
 * cluster stops, `deleteResources` has the workers delete their VMs and
 * networks themselves; `pidsMentioning` finds processes a test left.
 *
 * @example
 * ```ts
 * const net = await createHostNet(["h1", "h2"]);
 * const cluster = await startCluster();
 * try {
 *   await serveEtcdOn(cluster, net);
 *   await startWorkerIn(cluster, net, { name: "h1" });
 * } finally {
 *   await deleteResources(cluster, net);
 *   await cluster.stop();
 *   await net.destroy();
 * }
 * ```
 */
import { startEtcd } from "../../core/etcd_server.ts";
import { keys } from "../../core/keys.ts";
import { Network, Vm } from "../../core/schemas.ts";
import { deleteNetwork } from "../../resources/networks/delete.ts";
import { deleteVm } from "../../resources/vms/mod.ts";
import { type Cluster, type HostSpec, waitFor, WorkerProc } from "./cluster.ts";
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

// ------------------------------------------------------------- teardown

/**
 * Deletes every VM (as an admin: `vm.delete` tasks the workers run) and
 * waits until they are gone, deletes every network, then waits until the
 * workers removed the namespaces they made in `net` (DHCP servers): a
 * test's `finally` calls it before `cluster.stop()`, which SIGKILLs the
 * workers and would leave their daemons to `net.destroy()`. Never throws
 * (it must not hide the test's error): what it cannot do within
 * `timeoutMs`, e.g. on a host that was killed, it logs and leaves to
 * `net.destroy()`.
 */
export async function deleteResources(
  cluster: Cluster,
  net: HostNet,
  { timeoutMs = 120_000 }: { timeoutMs?: number } = {},
): Promise<void> {
  const { store, config } = cluster;
  const admin = { name: "test-teardown", admin: true };
  const hostNses = [...net.hosts.values()].map((h) => h.ns);
  const made = async () =>
    (await listNetns()).filter((n) =>
      n.startsWith(`uc-${net.id}-`) && !hostNses.includes(n)
    );
  const end = Date.now() + timeoutMs;
  const left = () => Math.max(1, end - Date.now());
  try {
    for (const v of (await store.list(keys.vms, Vm)).items) {
      await deleteVm({ store, config }, admin, v.value.id);
    }
    await waitFor(
      "every VM deleted",
      async () => (await store.count(keys.vms)) === 0,
      left(),
      250,
    );
    for (const n of (await store.list(keys.networks, Network)).items) {
      await deleteNetwork(store, admin, n.value.id);
    }
    await waitFor(
      "the workers' namespaces removed",
      async () => (await made()).length === 0,
      left(),
      250,
    );
  } catch (err) {
    console.error(
      `deleteResources: ${(err as Error).message}; left: ${
        (await made().catch(() => [])).join(" ")
      }`,
    );
  }
}

async function listNetns(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"] })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .map((l) => l.split(" ")[0]).filter(Boolean);
}

/**
 * Live processes whose command line mentions `needle` (e.g. a cluster's
 * dir: its workers, fencers, qemus, dnsmasqs and radvds): `pid cmdline`
 * lines. Zombies have no command line and are not counted.
 */
export async function pidsMentioning(needle: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(
      () => "",
    );
    if (cmd.includes(needle)) {
      out.push(`${e.name} ${cmd.replaceAll("\0", " ").trim()}`);
    }
  }
  return out;
}
