/**
 * Networks end to end, on real components: two hosts as network namespaces
 * on an IPv6 underlay, a worker in each (qemu driver, host network driver:
 * bridges, VXLAN, nftables, radvd), etcd, the API in process, and two tiny
 * qemu guests under TCG typed into through their serial consoles.
 *
 * - the guests configure the SLAAC address the API predicted and ping each
 *   other over IPv6 across the two hosts (VXLAN);
 * - a VM with a NIC in a public network is placed on the one host that has
 *   the configured bridge, its port joins that bridge with its firewall
 *   chain, and the hoster's side reaches the guest;
 * - delete of a network in use is refused;
 * - attach and detach on a running VM hot-plug a NIC the guest sees come
 *   and go, and the host's bridge for that network comes and goes with it;
 * - a worker restart leaves the firewall rules untouched (same handles,
 *   counters not reset);
 * - deleting the last VM removes bridge, VXLAN, port, rules and radvd.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Host, type Network, Vm } from "../core/schemas.ts";
import { linkLocal } from "../core/netaddr.ts";
import { bridgeOf, tapName, vxlanOf } from "../drivers/net/mod.ts";
import { networkSpec } from "../workers/net.ts";
import { startCluster, waitFor } from "./helpers/cluster.ts";
import { guestRun } from "./helpers/console.ts";
import {
  api,
  inHost,
  nftItems,
  portsOf,
  printNet,
  radvdRuns,
  taskDone,
  ucloudLinks,
  vmDoc,
  waitGuestAddr,
} from "./helpers/net_e2e.ts";
import { createHostNet } from "./helpers/netns.ts";
import {
  deleteResources,
  serveEtcdOn,
  startWorkerIn,
} from "./helpers/ns_worker.ts";

const HOSTS = ["h1", "h2"];

Deno.test({
  name:
    "networks end to end: two qemu guests on two hosts: SLAAC as predicted, ping over VXLAN, hot-plug, cleanup",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(ctx) {
    // A failed step stops the test, so the logs and the network get printed.
    const t = {
      step: async (name: string, fn: () => Promise<void>) => {
        if (!await ctx.step(name, fn)) throw new Error(`step failed: ${name}`);
      },
    };
    const c = await startCluster({ leaseTtlSeconds: 3 });
    const net = await createHostNet(HOSTS);
    try {
      await serveEtcdOn(c, net);
      // h1 has the hoster's public bridge pub0 (configured and present).
      await inHost(
        net,
        "h1",
        ...[
          "ip",
          "link",
          "add",
          "pub0",
          "type",
          "bridge",
          "forward_delay",
          "0",
        ],
      );
      await inHost(net, "h1", "ip", "link", "set", "pub0", "up");
      // h1 two CPUs, h2 one: the public VM takes h1 (the only host with
      // pub0), then a and b fill one CPU on each host.
      await startWorkerIn(c, net, {
        name: "h1",
        cpus: 2,
        memoryMiB: 1024,
        env: { UCLOUD_PUBLIC_BRIDGES: "pub0,missing0" },
      });
      await startWorkerIn(c, net, { name: "h2", cpus: 1, memoryMiB: 1024 });
      await waitFor(
        "2 hosts alive",
        async () => (await c.store.count(keys.alives)) === 2,
        20_000,
      );
      const app = createApp({ store: c.store });
      // eth0 on a multicast VXLAN, eth1 on a unicast one (peers from etcd).
      const lan = (await api(app, "POST", "/v1/networks", { name: "lan" }))
        .body as Network;
      const uni = (await api(app, "POST", "/v1/networks", {
        name: "uni",
        mode: "unicast",
      })).body as Network;
      assert.equal(lan.mode, "multicast");
      assert.equal(uni.mode, "unicast");
      const other = (await api(app, "POST", "/v1/networks", { name: "other" }))
        .body as Network;
      assert.ok(lan.vni && other.vni);

      const pub = (await api(app, "POST", "/v1/networks", {
        name: "internet",
        kind: "public",
        bridge: "pub0",
        prefix: "fd9e:1:2:3::/64",
      })).body as Network;
      const made = await api(app, "POST", "/v1/vms", {
        name: "p",
        cpus: 1,
        memory: 128,
        networks: [pub.id],
      });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const pubVm = made.body.vm.id as string;
      const host1 = await waitFor("h1 registered", async () => {
        const h = await c.store.get(keys.host("h1"), Host);
        return h?.value.publicBridges ? h.value : null;
      }, 20_000);
      // Only bridges that exist on the host are reported.
      assert.deepEqual(host1.publicBridges, ["pub0"]);
      const p = await waitFor(
        "public VM running",
        async () => {
          const d = await vmDoc(c, pubVm);
          return d?.status.phase === "running" ? d : null;
        },
        60_000,
        200,
      );
      assert.equal(p.status.host, "h1");

      const ids: string[] = [pubVm];
      for (const name of ["a", "b"]) {
        const r = await api(app, "POST", "/v1/vms", {
          name,
          cpus: 1,
          memory: 128,
          networks: [lan.id, uni.id],
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        ids.push(r.body.vm.id);
      }
      const [, a, b] = await waitFor(
        "all VMs running",
        async () => {
          const docs = await Promise.all(ids.map((id) => vmDoc(c, id)));
          return docs.every((d) => d?.status.phase === "running")
            ? docs as Vm[]
            : null;
        },
        60_000,
        200,
      );
      assert.notEqual(a.status.host, b.status.host);
      const consoleOf = (vm: Vm) => String(vm.status.handle!.console);
      assert.equal(
        a.status.host === "h1" ? b.status.host : a.status.host,
        "h2",
      );

      await t.step(
        "guests get the predicted SLAAC addresses and ping each other across hosts (multicast and unicast VXLAN)",
        async () => {
          for (const vm of [a, b]) {
            await waitGuestAddr(consoleOf(vm), "eth0", vm.nics[0].ipv6);
            await waitGuestAddr(consoleOf(vm), "eth1", vm.nics[1].ipv6);
          }
          const mac = await guestRun(
            consoleOf(a),
            "cat /sys/class/net/eth0/address",
          );
          assert.equal(mac.trim(), a.nics[0].mac);
          // The NIC's MTU is its network's (underlay 1500 - 70 of VXLAN).
          const mtu = await guestRun(
            consoleOf(a),
            "cat /sys/class/net/eth0/mtu /sys/class/net/eth1/mtu",
          );
          assert.deepEqual(mtu.trim().split(/\s+/), ["1430", "1430"]);
          const ab = await guestRun(
            consoleOf(a),
            `ping -6 -c 3 -W 3 ${b.nics[0].ipv6}`,
            { timeoutMs: 30_000 },
          );
          assert.match(ab, /3 packets received/);
          const ba = await guestRun(
            consoleOf(b),
            `ping -6 -c 3 -W 3 ${a.nics[0].ipv6}`,
            { timeoutMs: 30_000 },
          );
          assert.match(ba, /3 packets received/);
          const unicast = await guestRun(
            consoleOf(a),
            `ping -6 -c 3 -W 3 ${b.nics[1].ipv6}`,
            { timeoutMs: 30_000 },
          );
          assert.match(unicast, /3 packets received/);
          // Peers of the unicast network: the other host's underlay address.
          const fdb = await inHost(
            net,
            a.status.host!,
            "bridge",
            "fdb",
            "show",
            "dev",
            vxlanOf(networkSpec(uni)),
          );
          assert.ok(
            fdb.includes(`dst ${net.host(b.status.host!).address}`),
            fdb,
          );
          // The hosts made the network's bridge and VXLAN, and the VM's port.
          for (const vm of [a, b]) {
            const links = await ucloudLinks(net, vm.status.host!);
            for (const spec of [networkSpec(lan), networkSpec(uni)]) {
              assert.ok(links.includes(bridgeOf(spec)), links.join(" "));
              assert.ok(links.includes(vxlanOf(spec)), links.join(" "));
            }
            for (const nic of vm.nics) {
              assert.ok(links.includes(tapName(nic.mac)), links.join(" "));
            }
            assert.ok(await radvdRuns(net, vm.status.host!));
          }
        },
      );

      await t.step(
        "a VM on a public network: on the host with the bridge, its port on it, reachable from the hoster's side",
        async () => {
          const tap = tapName(p.nics[0].mac);
          assert.deepEqual(await portsOf(net, "h1", "pub0"), [tap]);
          assert.ok(
            (await nftItems(net, "h1")).some((i) =>
              i.chain?.name === `nic-${tap}`
            ),
          );
          assert.equal(
            (await guestRun(consoleOf(p), "cat /sys/class/net/eth0/address"))
              .trim(),
            p.nics[0].mac,
          );
          // The hoster's router side (here: h1 on pub0) reaches the guest.
          let lastPing = "";
          await waitFor(
            "guest answers on pub0",
            async () => {
              try {
                await inHost(
                  net,
                  "h1",
                  ...["busybox", "ping", "-6", "-c", "1", "-W", "2"],
                  ...["-I", "pub0", linkLocal(p.nics[0].mac)],
                );
                return true;
              } catch (err) {
                lastPing = String(err);
                return false;
              }
            },
            20_000,
            500,
          ).catch((err) => {
            throw new Error(`${err.message}; last ping: ${lastPing}`);
          });
        },
      );

      await t.step("a network in use cannot be deleted", async () => {
        const r = await api(app, "DELETE", `/v1/networks/${lan.id}`);
        assert.equal(r.status, 409);
        assert.match(r.body.error.message, new RegExp(a.id));
      });

      await t.step(
        "attach and detach on a running VM hot-plug a NIC",
        async () => {
          const host = a.status.host!;
          const spec = networkSpec(other);
          const r = await api(app, "POST", `/v1/vms/${a.id}/nics`, {
            network: other.id,
          });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          assert.equal(r.body.task.kind, "vm.nics");
          await taskDone(c, r.body.task.id);
          const nic = r.body.vm.nics.find((n: { slot: number }) =>
            n.slot === 2
          );
          const seen = await waitFor(
            "guest sees eth2",
            async () => {
              const out = await guestRun(
                consoleOf(a),
                "cat /sys/class/net/eth2/address",
              ).catch(() => null);
              return out?.trim() || null;
            },
            30_000,
            500,
          );
          assert.equal(seen, nic.mac);
          assert.equal(
            (await guestRun(consoleOf(a), "cat /sys/class/net/eth2/mtu"))
              .trim(),
            "1430",
          );
          await waitGuestAddr(consoleOf(a), "eth2", nic.ipv6);
          assert.ok((await ucloudLinks(net, host)).includes(bridgeOf(spec)));

          const d = await api(app, "DELETE", `/v1/vms/${a.id}/nics/2`);
          assert.equal(d.status, 202, JSON.stringify(d.body));
          await taskDone(c, d.body.task.id);
          const gone = await guestRun(
            consoleOf(a),
            "test -e /sys/class/net/eth2 && echo present || echo absent",
          );
          assert.equal(gone.trim(), "absent");
          const doc = await vmDoc(c, a.id);
          assert.deepEqual(doc?.nics.map((n) => n.slot), [0, 1]);
          // Nobody on this host uses `other` any more: its bridge goes.
          await waitFor("other's bridge removed", async () => {
            const links = await ucloudLinks(net, host);
            return !links.includes(bridgeOf(spec)) &&
              !links.includes(vxlanOf(spec)) &&
              !links.includes(tapName(nic.mac));
          }, 15_000);
          const del = await api(app, "DELETE", `/v1/networks/${other.id}`);
          assert.equal(del.status, 200, JSON.stringify(del.body));
        },
      );

      await t.step(
        "a worker restart leaves the firewall rules as they were",
        async () => {
          const host = a.status.host!;
          const before = await nftItems(net, host);
          assert.ok(before.some((i) => i.chain), "the table has chains");
          const w = c.workers.get(host)!;
          await w.kill("SIGKILL");
          await w.start();
          await waitFor("worker back", async () => {
            const log = await w.log();
            return log.split("\n").filter((l) => l.includes("host registered"))
              .length >= 2;
          }, 20_000);
          // Let its start-up sync run, then compare rule for rule.
          await new Promise((r) => setTimeout(r, 2_000));
          const after = await nftItems(net, host);
          const rules = (items: typeof before) =>
            items.filter((i) => i.rule).map((i) => ({
              chain: i.rule.chain,
              handle: i.rule.handle,
              comment: i.rule.comment,
            }));
          assert.deepEqual(rules(after), rules(before));
          const ab = await guestRun(
            consoleOf(a),
            `ping -6 -c 2 -W 3 ${b.nics[0].ipv6}`,
            { timeoutMs: 30_000 },
          );
          assert.match(ab, /2 packets received/);
        },
      );

      await t.step(
        "deleting the last VM removes bridge, VXLAN, port, rules and radvd",
        async () => {
          for (const id of ids) {
            const r = await api(app, "DELETE", `/v1/vms/${id}`);
            assert.equal(r.status, 202);
          }
          await waitFor(
            "VMs gone",
            async () =>
              (await Promise.all(ids.map((id) => vmDoc(c, id)))).every((d) =>
                d === null
              ),
            60_000,
          );
          for (const h of HOSTS) {
            await waitFor(
              `${h} clean`,
              async () =>
                (await ucloudLinks(net, h)).length === 0 &&
                !(await nftItems(net, h)).some((i) =>
                  i.chain && /^nic/.test(i.chain.name)
                ) &&
                !(await radvdRuns(net, h)),
              15_000,
            );
          }
          // The hoster's bridge stays; only ucloud's port left it.
          assert.deepEqual(
            await portsOf(net, "h1", "pub0"),
            [],
          );
          for (const n of [lan, uni, pub]) {
            const del = await api(app, "DELETE", `/v1/networks/${n.id}`);
            assert.equal(del.status, 200, JSON.stringify(del.body));
          }
          assert.equal((await c.store.keys(keys.netMembers)).length, 0);
        },
      );
    } catch (err) {
      await c.printLogs();
      await printNet(net);
      throw err;
    } finally {
      await deleteResources(c, net);
      await c.stop();
      await net.destroy();
    }
  },
});
