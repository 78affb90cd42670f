/**
 * A qemu host for the web tests (`withWebEnv`'s `hosts` option): worker h1
 * in a host namespace (tests/helpers/netns.ts, ns_worker.ts) with the qemu
 * driver under TCG and host networking (its underlay is the namespace's
 * eth0, so private networks, DHCP and its console relay work; the API in
 * this process reaches the relay over the test bridge), and an images
 * configuration (upload area and file store in the cluster's dir) shared
 * by the worker and the app. Before the cluster stops the worker deletes
 * its VMs and networks; after, the namespaces go.
 *
 * @example
 * ```ts
 * await withWebEnv(async (env) => {...}, {
 *   cluster: { leaseTtlSeconds: 3 },
 *   hosts: qemuHost,
 * });
 * ```
 */
import { ImagesConfig } from "../../core/config_images.ts";
import type { Cluster } from "./cluster.ts";
import { printNet } from "./net_e2e.ts";
import { createHostNet } from "./netns.ts";
import { deleteResources, serveEtcdOn, startWorkerIn } from "./ns_worker.ts";
import type { WebHosts } from "./web_env.ts";

/** Starts qemu host h1 (2 CPUs, 1 GiB) in a namespace of its own. */
export async function qemuHost(cluster: Cluster): Promise<WebHosts> {
  const net = await createHostNet(["h1"]);
  try {
    await serveEtcdOn(cluster, net);
    const images = ImagesConfig.parse({
      uploadDir: `${cluster.dir}/www`,
      fileStoreDir: `${cluster.dir}/store`,
    });
    const configFile = `${cluster.dir}/images.json`;
    await Deno.writeTextFile(configFile, JSON.stringify({ images }));
    await startWorkerIn(cluster, net, {
      name: "h1",
      cpus: 2,
      memoryMiB: 1024,
      env: { UCLOUD_CONFIG: configFile },
    });
    return {
      images,
      beforeStop: () => deleteResources(cluster, net),
      afterStop: () => net.destroy(),
      printState: () => printNet(net),
    };
  } catch (err) {
    // Kills what runs in the namespace; withWebEnv stops the cluster.
    await net.destroy();
    throw err;
  }
}
