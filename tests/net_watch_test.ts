/**
 * A host's network sync follows its VMs through the watched cache
 * (workers/host_vms.ts): a VM placed on the host gets its port, and loses
 * it when it moves away, with no sync asked for. Real etcd, a host
 * namespace with the real network driver.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { keys } from "../core/keys.ts";
import { eui64 } from "../core/netaddr.ts";
import type { Network, Nic } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { DEVICE_ALIAS, tapName } from "../drivers/net/names.ts";
import { run } from "../drivers/runner.ts";
import { HostNet } from "../workers/net.ts";
import { noSanitize } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";
import { hostNet, VmCaches } from "./helpers/host_vms.ts";
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
const nicOf = (mac: string): Nic => ({
  slot: 0,
  network: lan.id,
  mac,
  ipv6: eui64(lan.prefix, mac),
  state: "attached",
});
const nic = nicOf(mac);

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
          const net = await hostNet(env, b.store, caches, worker);
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

/** `store`, counting the listings of prefix `prefix` in `n.count`. */
function counting(store: Store, prefix: string, n: { count: number }): Store {
  return new Proxy(store, {
    get(t, p) {
      const v = Reflect.get(t, p);
      if (p === "list") {
        return (...args: Parameters<Store["list"]>) => {
          if (args[0].startsWith(prefix)) n.count++;
          return t.list(...args);
        };
      }
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
}

Deno.test({
  name:
    "HostNet keeps the port of an unreadable VM last seen on its host and lists ipam/mac/ once for one whose host was never known, not on every sync",
  ...noSanitize,
  async fn() {
    await withNetHosts(["h1"], (env) =>
      withBench(async (b) => {
        const caches = new VmCaches();
        try {
          const ns = env.net.host("h1").ns;
          const unreadable = (id: string) =>
            b.store.client.kv.put({
              key: b.store.full(keys.vm(id)),
              value: Buffer.from(JSON.stringify({ id, future: true })),
            });
          await b.store.txn().put(keys.network(lan.id), lan).commit();
          const worker = await b.incarnation("h1");
          const [h, u, e] = ["02", "03", "04"].map((x) =>
            nicOf(`02:c1:0d:00:09:${x}`)
          );
          await b.putVm(
            vmDoc("vm-h", { phase: "running", host: "h1" }, { nics: [h] }),
          );
          await b.putVm(
            vmDoc("vm-e", { phase: "running", host: "h2" }, { nics: [e] }),
          );
          // vm-u was unreadable before this worker started: its host is
          // unknown, and an earlier worker left its tap here.
          await unreadable("vm-u");
          for (const [vm, n] of [["vm-u", u], ["vm-e", e]] as const) {
            await b.store.txn().put(keys.ipamMac(n.mac), {
              network: lan.id,
              vm,
              slot: 0,
            }).commit();
            await run("ip", [
              "-n",
              ns,
              "tuntap",
              "add",
              "dev",
              tapName(n.mac),
              "mode",
              "tap",
            ]);
            // As the driver makes its taps: ours to remove when unwanted.
            await run("ip", [
              "-n",
              ns,
              "link",
              "set",
              tapName(n.mac),
              "alias",
              DEVICE_ALIAS,
            ]);
          }
          const ipam = { count: 0 };
          const vms = await caches.start(b.store, "h1", env.log);
          const net = new HostNet({
            store: counting(b.store, keys.ipamMac(""), ipam),
            host: "h1",
            driver: env.driver("h1", false),
            underlay: null,
            lease: () => worker.lease,
            log: env.log.child({ host: "h1" }),
            vms,
          });
          await net.sync();
          assert.ok(await hasLink(ns, tapName(h.mac)), "vm-h has no port");
          // A newer release rewrites this host's vm-h and h2's vm-e.
          await unreadable("vm-h");
          await unreadable("vm-e");
          await waitFor(
            "both unreadable",
            () => vms.unreadable().has("vm-h") && vms.unreadable().has("vm-e"),
          );
          await net.sync();
          await net.sync();
          assert.ok(await hasLink(ns, tapName(h.mac)), "vm-h's port gone");
          assert.ok(await hasLink(ns, tapName(u.mac)), "vm-u's tap gone");
          assert.equal(await hasLink(ns, tapName(e.mac)), false);
          assert.equal(ipam.count, 1, "ipam/mac/ listings");
        } finally {
          await caches.close();
        }
      }), { prefix: "ucwatch" });
  },
});
