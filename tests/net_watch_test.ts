/**
 * A host's network sync follows its VMs through the watched cache
 * (workers/host_vms.ts): a VM placed on the host gets its port, and loses
 * it when it moves away, with no sync asked for. Real etcd, a host
 * namespace with the real network driver.
 */
import { keys } from "../core/keys.ts";
import { eui64 } from "../core/netaddr.ts";
import type { Network, Nic } from "../core/schemas.ts";
import { tapName } from "../drivers/net/mod.ts";
import { run } from "../drivers/runner.ts";
import { HostNet } from "../workers/net.ts";
import { noSanitize } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";
import { VmCaches } from "./helpers/host_vms.ts";
import { withNetHosts } from "./helpers/net_hosts.ts";
import { vmDoc, withBench } from "./helpers/task_ctx.ts";

const lan: Network = {
  id: "net-wlan",
  name: "lan",
  owner: "alice",
  kind: "private",
  prefix: "fdc1:d00:9::/64",
  vni: 4245,
  mode: "multicast",
  group: "ff05::1095",
  ra: false,
  dhcp: { v6: false, v4: false },
  vms: [],
  createdAt: "2026-01-01T00:00:00Z",
};

const mac = "02:c1:0d:00:09:01";
const nic: Nic = {
  slot: 0,
  network: lan.id,
  mac,
  ipv6: eui64(lan.prefix, mac),
  state: "attached",
};

async function hasLink(ns: string, name: string): Promise<boolean> {
  const { stdout } = await run("ip", ["-n", ns, "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string }[]).some((l) =>
    l.ifname === name
  );
}

Deno.test({
  name:
    "HostNet.run() gives a VM placed on its host a port and takes it away when the VM moves, from the watch",
  ...noSanitize,
  async fn() {
    await withNetHosts(["h1"], (env) =>
      withBench(async (b) => {
        const caches = new VmCaches();
        const stop = new AbortController();
        let running: Promise<void> | undefined;
        try {
          const ns = env.net.host("h1").ns;
          await b.store.txn().put(keys.network(lan.id), lan).commit();
          const worker = await b.incarnation("h1");
          const net = new HostNet({
            store: b.store,
            host: "h1",
            driver: env.driver("h1", false),
            underlay: null,
            lease: () => worker.lease,
            log: env.log.child({ host: "h1" }),
            vms: await caches.start(b.store, "h1", env.log),
          });
          await net.sync();
          running = net.run(stop.signal);
          const tap = tapName(mac);
          const doc = vmDoc("vm-w", { phase: "running", host: "h1" }, {
            nics: [nic],
          });
          await b.putVm(doc);
          await waitFor("the port made", () => hasLink(ns, tap));
          await b.putVm({ ...doc, status: { ...doc.status, host: "h2" } });
          await waitFor("the port removed", async () =>
            !(await hasLink(ns, tap)));
        } finally {
          stop.abort();
          await running;
          await caches.close();
        }
      }), { prefix: "ucwatch" });
  },
});
