/**
 * One host namespace h1 with the real network driver, its HostNet on real
 * etcd and `start(vm)` running the vm.start handler with the sim VM driver,
 * a private network `lan` and its NICs: shared by the tests of host ports
 * (tests/net_bad_port_test.ts, tests/net_tap_names_test.ts).
 */
import assert from "node:assert/strict";
import { keys } from "../../core/keys.ts";
import { eui64 } from "../../core/netaddr.ts";
import type { Network, Nic } from "../../core/schemas.ts";
import { nicChain } from "../../drivers/net/mod.ts";
import { run } from "../../drivers/runner.ts";
import { vmStart } from "../../tasks/vm_start.ts";
import type { HostNet } from "../../workers/net.ts";
import { type NetEnv, nftTable, withNetHosts } from "./net_hosts.ts";
import { hostNet, VmCaches } from "./host_vms.ts";
import { type Bench, withBench } from "./task_ctx.ts";

/** A private network. */
export const lan: Network = {
  id: "net-lan",
  name: "lan",
  owner: "alice",
  kind: "private",
  prefix: "fdc1:d00:7::/64",
  ipv4: "198.51.100.0/24",
  vni: 4243,
  mode: "multicast",
  group: "ff05::1093",
  ra: false,
  dhcp: { v6: false, v4: false },
  vms: [],
  createdAt: "2026-01-01T00:00:00Z",
};

/** NIC `n` on lan: MAC 02:c1:0d:00:07:<n>, slot 0 unless `more` says. */
export const nic = (n: number, more: Partial<Nic> = {}): Nic => {
  const mac = `02:c1:0d:00:07:${n.toString(16).padStart(2, "0")}`;
  return {
    slot: 0,
    network: lan.id,
    mac,
    ipv6: eui64(lan.prefix, mac),
    ipv4: `198.51.100.${n}`,
    state: "attached",
    ...more,
  };
};

/** A host h1 with its HostNet, lan in etcd and `start(vm)` running vm.start. */
export async function withHost(
  f: (h: {
    env: NetEnv;
    b: Bench;
    ns: string;
    hostNet: () => Promise<HostNet>;
    start: (id: string, net?: HostNet) => Promise<void>;
  }) => Promise<void>,
) {
  await withNetHosts(["h1"], (env) =>
    withBench(async (b) => {
      const caches = new VmCaches();
      try {
        await b.store.txn().put(keys.network(lan.id), lan).commit();
        const worker = await b.incarnation("h1");
        // A new one is a restarted worker's: it lists the VMs again.
        const restarted = () => hostNet(env, b.store, caches, worker);
        const net = await restarted();
        const start = async (id: string, n = net) => {
          const ctx = await b.context(worker, "vm.start", { vm: id });
          const out = await vmStart({ ...ctx, net: n });
          assert.ok(out.txn, `vm.start of ${id} did not finish`);
          assert.ok((await out.txn.commit()).ok);
        };
        await f({
          env,
          b,
          ns: env.net.host("h1").ns,
          hostNet: restarted,
          start,
        });
        await b.driver.fence();
      } finally {
        await caches.close();
      }
    }), { prefix: "ucbad" });
}

/** Link `name` of namespace `ns`, or undefined. */
export async function link(ns: string, name: string) {
  const { stdout } = await run("ip", ["-n", ns, "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string; master?: string }[])
    .find((l) => l.ifname === name);
}

/** The handles of port `port`'s rules (bridge table), or undefined. */
export const handles = async (ns: string, port: string) =>
  (await nftTable(ns))?.chains.get(nicChain(port))?.rules.map((r) => r.handle);
