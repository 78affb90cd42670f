/**
 * The fixture of the metadata end-to-end test and benchmark: one host
 * namespace (`withHosts`, tests/helpers/net_dhcp.ts) with etcd reachable
 * from it (`serveEtcdOn`), a private network with legacy IPv4 made by the
 * resource functions, VMs of alice's on it (documents with NICs, placed
 * running on h1, each a namespace on its tap with the NIC's MAC, its IPv4
 * address set by hand and `169.254.169.254` on-link: the DHCP option 121
 * path is tests/net_metadata_test.ts's), and the host's networking and
 * metadata service in a child in the host namespace (metadata_host.ts).
 *
 * @example
 * ```ts
 * await withMetadataVms(async (env) => {
 *   const x = await env.vm("x", ["kx"]);
 *   await env.startHost();
 *   await wget(x.ns, `http://[fd00:ec2::254]/latest/meta-data/instance-id`);
 * });
 * ```
 */
import { keys } from "../../core/keys.ts";
import { type Network, Vm, VmCreateInput } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { METADATA } from "../../drivers/net/host_input.ts";
import { tapName } from "../../drivers/net/names.ts";
import { run } from "../../drivers/runner.ts";
import { sshKeygen } from "../../resources/keys/_keygen.ts";
import { createKey } from "../../resources/keys/create.ts";
import { createNetwork } from "../../resources/networks/create.ts";
import { createVm } from "../../resources/vms/create.ts";
import { place } from "./api_fixtures.ts";
import { startCluster } from "./cluster.ts";
import { ALICE } from "./metadata_env.ts";
import { type MetadataHost, startMetadataHost } from "./metadata_host.ts";
import { withHosts } from "./net_dhcp.ts";
import { serveEtcdOn } from "./ns_worker.ts";
import { nsRun, type VmNs, waitAddress } from "./vmns.ts";

/** A VM of the fixture: its document and its namespace. */
export interface MetaVm {
  doc: Vm;
  ns: VmNs;
  /** The authorized_keys line of each of its keys, by name. */
  keys: Record<string, string>;
}

/** What the test works with. */
export interface MetadataVmsEnv {
  store: Store;
  network: Network;
  /** A VM with new keys `keyNames` (named in its spec) and `userData`. */
  vm(name: string, keyNames: string[], userData?: string): Promise<MetaVm>;
  /** Packets each port's filter rules dropped so far, by port. */
  drops(): Promise<Map<string, number>>;
  /** Starts the host's networking and metadata service (after the VMs). */
  startHost(opts?: { requireToken?: boolean }): Promise<MetadataHost>;
}

/** Runs `f`; the child, the VMs, the host and etcd are gone afterwards. */
export function withMetadataVms(
  f: (env: MetadataVmsEnv) => Promise<void>,
): Promise<void> {
  return withHosts(["h1"], async ({ net, vms, dirs, driver }) => {
    const cluster = await startCluster({ guest: false });
    let host: MetadataHost | undefined;
    const keyDir = await Deno.makeTempDir({ prefix: "ucloud-metae2e-" });
    try {
      const etcd = await serveEtcdOn(cluster, net);
      const { store } = cluster;
      const deps = { store, config: cluster.config };
      const network = await createNetwork(deps, ALICE, {
        name: "meta",
        kind: "private",
        ipv4: "198.51.100.0/24",
      });
      const h1 = net.host("h1");
      const env: MetadataVmsEnv = {
        store,
        network,
        async vm(name, keyNames, userData) {
          const lines: Record<string, string> = {};
          for (const k of keyNames) {
            const publicKey = (await sshKeygen(keyDir, "ed25519", undefined, k))
              .line;
            lines[k] = (await createKey(store, ALICE, { name: k, publicKey }))
              .publicKey;
          }
          const input = VmCreateInput.parse({
            name,
            cpus: 1,
            memory: 128,
            networks: [network.id],
            keys: keyNames,
            ...(userData === undefined ? {} : { userData }),
          });
          const { id } = (await createVm(deps, ALICE, input)).vm;
          await place(store, id, "h1", "running");
          const doc = (await store.get(keys.vm(id), Vm))!.value;
          const nic = doc.nics[0];
          const ns = await vms.create({
            name,
            hostNs: h1.ns,
            port: tapName(nic.mac),
            mac: nic.mac,
            ipv4: `${nic.ipv4}/24`,
          });
          await run("ip", [
            "-n",
            ns.ns,
            "route",
            "add",
            METADATA.ipv4,
            "dev",
            "eth0",
          ]);
          return { doc, ns, keys: lines };
        },
        drops: () => driver("h1", false).portDrops(),
        async startHost(opts = {}) {
          host = await startMetadataHost({
            ns: h1.ns,
            etcd,
            prefix: cluster.config.etcd.prefix,
            host: "h1",
            stateDir: dirs.get("h1")!,
            requireToken: opts.requireToken,
          });
          return host;
        },
      };
      await f(env);
    } finally {
      await host?.stop();
      await cluster.stop();
      await Deno.remove(keyDir, { recursive: true });
    }
  });
}

/** Waits until the VM has its NIC's SLAAC address (the RA came). */
export async function vmReady(vm: MetaVm): Promise<void> {
  await waitAddress(vm.ns, vm.doc.nics[0].ipv6, 30_000);
}

/**
 * What busybox wget in the VM gets from `url`; null when it fails or takes
 * over 5 s. (Debian 12's busybox 1.35 wget segfaults with `-T`: the
 * runner's timeout bounds it instead.)
 */
export async function wget(vm: MetaVm, url: string): Promise<string | null> {
  try {
    const { stdout } = await nsRun(vm.ns.ns, "busybox", [
      "wget",
      "-q",
      "-O",
      "-",
      url,
    ], { timeoutMs: 5000 });
    return stdout;
  } catch {
    return null;
  }
}
