/**
 * One bad port cannot stop a host's network sync (issue 17, hole 7), and
 * the ports of a VM whose document cannot be read stay as they are: real
 * etcd, a host namespace with the real network driver, the vm.start
 * handler with the sim VM driver (as tests/public_bridge_test.ts).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { keys } from "../core/keys.ts";
import type { Nic } from "../core/schemas.ts";
import { bridgeOf, nicChain, tapName } from "../drivers/net/mod.ts";
import { run } from "../drivers/runner.ts";
import { PermanentError } from "../tasks/context.ts";
import { noSanitize } from "./helpers/api.ts";
import { ingressTable } from "./helpers/attack_env.ts";
import { handles, lan, link, nic, withHost } from "./helpers/host_ports.ts";
import { nftTable } from "./helpers/net_hosts.ts";
import { vmDoc } from "./helpers/task_ctx.ts";

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
      const busy = tapName(nic(4).mac);
      await run("ip", ["-n", ns, "link", "add", busy, "type", "bridge"]);
      // A tap whose ingress hook another program filled (1024 hooks): the
      // kernel refuses its ingress chain, which no check can tell before.
      await put("vm-full", nic(5));
      const full = tapName(nic(5).mac);
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
      // A device of its tap's name without IPv6 (MTU under 1280): its
      // sysctl fails, which no check can tell before.
      await put("vm-noip6", nic(8));
      const noip6 = tapName(nic(8).mac);
      await run("ip", [
        "-n",
        ns,
        "link",
        "add",
        noip6,
        "mtu",
        "1000",
        "type",
        "veth",
        "peer",
        "name",
        `${noip6.slice(0, 12)}-p`,
      ]);
      await put("vm-good", nic(6));

      await start("vm-good");
      const good = tapName(nic(6).mac);
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
      await fails(
        "vm-noip6",
        false,
        /Cannot set the sysctls of port .*disable_ipv6/,
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
      await run("ip", ["-n", ns, "link", "del", noip6]);
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
      // As resources/networks/nics.ts records the NIC's MAC.
      await b.store.txn().put(keys.ipamMac(nic(7).mac), {
        network: lan.id,
        vm: "vm-a",
        slot: 0,
      }).commit();
      await start("vm-a");
      const a = tapName(nic(7).mac);
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
