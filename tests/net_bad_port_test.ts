/**
 * One bad port cannot stop a host's network sync (issue 17, hole 7), and
 * the ports of a VM whose document cannot be read stay as they are: real
 * etcd, a host namespace with the real network driver, the vm.start
 * handler with the sim VM driver (as tests/public_bridge_test.ts).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { keys } from "../core/keys.ts";
import { eui64 } from "../core/netaddr.ts";
import type { Network, Nic } from "../core/schemas.ts";
import { bridgeOf, nicChain, tapName } from "../drivers/net/mod.ts";
import { run } from "../drivers/runner.ts";
import { PermanentError } from "../tasks/context.ts";
import { vmStart } from "../tasks/vm_start.ts";
import { HostNet } from "../workers/net.ts";
import { noSanitize } from "./helpers/api.ts";
import { ingressTable } from "./helpers/attack_env.ts";
import { type NetEnv, nftTable, withNetHosts } from "./helpers/net_hosts.ts";
import { type Bench, vmDoc, withBench } from "./helpers/task_ctx.ts";
import { VmCaches } from "./helpers/host_vms.ts";

const lan: Network = {
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

const nic = (n: number, more: Partial<Nic> = {}): Nic => {
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
async function withHost(
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
        const hostNet = async () =>
          new HostNet({
            store: b.store,
            host: "h1",
            driver: env.driver("h1", false),
            underlay: null,
            lease: () => worker.lease,
            log: env.log.child({ host: "h1" }),
            vms: await caches.start(b.store, "h1", env.log),
          });
        const net = await hostNet();
        const start = async (id: string, n = net) => {
          const ctx = await b.context(worker, "vm.start", { vm: id });
          const out = await vmStart({ ...ctx, net: n });
          assert.ok(out.txn, `vm.start of ${id} did not finish`);
          assert.ok((await out.txn.commit()).ok);
        };
        await f({ env, b, ns: env.net.host("h1").ns, hostNet, start });
        await b.driver.fence();
      } finally {
        await caches.close();
      }
    }), { prefix: "ucbad" });
}

async function link(ns: string, name: string) {
  const { stdout } = await run("ip", ["-n", ns, "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string; master?: string }[])
    .find((l) => l.ifname === name);
}

const handles = async (ns: string, port: string) =>
  (await nftTable(ns))?.chains.get(nicChain(port))?.rules.map((r) => r.handle);

Deno.test({
  name:
    "one bad port does not stop a host's network sync: the other VMs start, each bad one's vm.start fails with its reason",
  ...noSanitize,
  async fn() {
    await withHost(async ({ b, ns, start, env }) => {
      const put = (id: string, n: Nic) =>
        b.putVm(vmDoc(id, { phase: "scheduled", host: "h1" }, { nics: [n] }));
      // A service address (the network's server), an IPv4 that is none.
      await put("vm-svc", nic(2, { ipv6: "fdc1:d00:7::1" }));
      await put("vm-v4", nic(3, { ipv4: "300.1.1.1" }));
      // A device of its tap's name that cannot join a bridge (a bridge).
      await put("vm-busy", nic(4));
      const busy = tapName("vm-busy", 0);
      await run("ip", ["-n", ns, "link", "add", busy, "type", "bridge"]);
      // A tap whose ingress hook another program filled (1024 hooks): the
      // kernel refuses its ingress chain, which no check can tell before.
      await put("vm-full", nic(5));
      const full = tapName("vm-full", 0);
      await run("ip", ["-n", ns, "tuntap", "add", "dev", full, "mode", "tap"]);
      const hooks = ["add table netdev other"];
      for (let i = 1; i <= 1024; i++) {
        hooks.push(
          `add chain netdev other c${i} { type filter hook ingress device "${full}" priority ${i}; }`,
        );
      }
      await run("ip", ["netns", "exec", ns, "nft", "-f", "-"], {
        stdin: hooks.join("\n") + "\n",
      });
      await put("vm-good", nic(6));

      await start("vm-good");
      const good = tapName("vm-good", 0);
      assert.equal((await link(ns, good))?.master, bridgeOf(lan));
      assert.ok((await handles(ns, good))?.length, "vm-good has no rules");
      const before = await handles(ns, good);

      const fails = async (id: string, permanent: boolean, re: RegExp) => {
        await assert.rejects(() => start(id), (err: Error) => {
          assert.equal(err instanceof PermanentError, permanent, String(err));
          assert.match(err.message, new RegExp(`VM ${id} on host h1`));
          assert.match(err.message, re);
          return true;
        });
      };
      await fails("vm-svc", true, /fdc1:d00:7::1 is a service address/);
      await fails("vm-v4", true, /bad IPv4 address 300\.1\.1\.1/);
      await fails("vm-busy", false, /Cannot attach port/);
      await fails(
        "vm-full",
        false,
        /nft refused its rules: .*Argument list too long/,
      );
      assert.equal((await nftTable(ns))?.chains.has(nicChain(full)), false);
      assert.ok(
        env.log.lines.some((l) =>
          l.includes("network ports left out of the sync") &&
          l.includes("vm-full")
        ),
      );

      // Once the other program lets go, the next try gets its rules;
      // vm-good's rules were never replaced meanwhile.
      await run("ip", [
        "netns",
        "exec",
        ns,
        "nft",
        "delete table netdev other",
      ]);
      await start("vm-full");
      assert.equal((await link(ns, full))?.master, bridgeOf(lan));
      assert.ok((await ingressTable(ns))?.chains.has(nicChain(full)));
      assert.deepEqual(await handles(ns, good), before, "rule handles changed");
      await run("ip", ["-n", ns, "link", "del", busy]);
      await run("ip", ["-n", ns, "link", "del", full]);
    });
  },
});

Deno.test({
  name:
    "a VM whose document cannot be read keeps its port, rules and bridge on its host, also after a worker restart",
  ...noSanitize,
  async fn() {
    await withHost(async ({ b, ns, start, hostNet }) => {
      await b.putVm(vmDoc("vm-a", { phase: "scheduled", host: "h1" }, {
        nics: [nic(7)],
      }));
      await start("vm-a");
      const a = tapName("vm-a", 0);
      const before = await handles(ns, a);
      assert.ok(before?.length);
      const ingress = (await ingressTable(ns))?.chains.get(nicChain(a));
      assert.ok(ingress);

      // A newer release wrote what this one cannot read.
      await b.store.client.kv.put({
        key: b.store.full(keys.vm("vm-a")),
        value: Buffer.from(JSON.stringify({ id: "vm-a", future: true })),
      });
      // A restarted worker knows nothing of vm-a but its key.
      await (await hostNet()).sync();
      assert.equal((await link(ns, a))?.master, bridgeOf(lan), "port gone");
      assert.deepEqual(await handles(ns, a), before, "rules changed");
      assert.equal(
        (await ingressTable(ns))?.chains.get(nicChain(a))?.handle,
        ingress.handle,
      );

      // Readable again, but its network's document is not.
      await b.putVm(vmDoc("vm-a", { phase: "running", host: "h1" }, {
        nics: [nic(7)],
      }));
      await b.store.client.kv.put({
        key: b.store.full(keys.network(lan.id)),
        value: Buffer.from("{not json"),
      });
      await (await hostNet()).sync();
      assert.equal((await link(ns, a))?.master, bridgeOf(lan), "port gone");
      assert.deepEqual(await handles(ns, a), before, "rules changed");
      await b.store.txn().put(keys.network(lan.id), lan).commit();

      // Readable again and stopped: its port goes, and with it the bridge.
      await b.putVm(vmDoc("vm-a", { phase: "stopped" }, { nics: [nic(7)] }));
      await (await hostNet()).sync();
      assert.equal(await link(ns, a), undefined);
      assert.equal(await link(ns, bridgeOf(lan)), undefined);
    });
  },
});
