/**
 * DHCP servers of the host network driver on real kernel networking, one
 * host: VMs of a legacy network get exactly their addresses by DHCPv4 and
 * DHCPv6, a re-sync keeps dnsmasq, its last port takes it away. Hosts and
 * VMs are namespaces (tests/helpers/netns.ts, tests/helpers/vmns.ts), the
 * servers real dnsmasq processes in their DHCP namespaces, the clients
 * busybox udhcpc and small python clients (DHCPv6, and DHCPv4 with any
 * client hardware address, counting every offer).
 */
import assert from "node:assert/strict";
import { eui64, formatIpv6, linkLocal, parseIpv6 } from "../core/netaddr.ts";
import { run } from "../drivers/runner.ts";
import { REPLY_TABLE } from "../drivers/net/bridge_addrs.ts";
import { dhcpNetnsOf } from "../drivers/net/names.ts";
import type { HostNetState } from "../drivers/net/types.ts";
import {
  dhcpNamespacesOf,
  dnsmasqPid,
  eth0,
  legacyNet,
  linkNames,
  offersOf,
  portOf,
  withHosts,
} from "./helpers/net_dhcp.ts";
import { dhcp4Lease, dhcp4Offers, dhcp6 } from "./helpers/vm_dhcp.ts";
import { daemonsIn, ping } from "./helpers/vmns.ts";

Deno.test("NetDriver DHCP: VMs of a legacy network get exactly their addresses by DHCPv4 and DHCPv6; re-sync keeps dnsmasq; its last port takes it away", async (t) => {
  await withHosts(["h1"], async ({ net, vm, driver, dirs }) => {
    const h1 = net.host("h1");
    const dir = dirs.get("h1")!;
    const n4 = legacyNet("n4", 0x311, `fdc1:d00:${net.id}:11::/64`);
    const x = await vm("x", "h1", 0x11), y = await vm("y", "h1", 0x12);
    const state: HostNetState = {
      networks: [n4],
      ports: [portOf(x, n4, "198.51.100.2"), portOf(y, n4, "198.51.100.3")],
      peers: {},
    };
    const dhcpNs = dhcpNetnsOf(n4, h1.ns);
    const d = driver("h1", false);
    const t0 = performance.now();
    const report = await d.sync(state);
    const synced = performance.now();
    console.log(
      `sync of a new network with DHCP and 2 ports: ${
        (synced - t0).toFixed(0)
      } ms`,
    );
    assert.ok(report.added.includes("ucd311"), JSON.stringify(report));
    const pid = await dnsmasqPid(dir, "n4");
    assert.ok(pid !== null, "dnsmasq runs");

    await t.step(
      "the DHCP namespace holds the server's addresses",
      async () => {
        const inner = await eth0(dhcpNs);
        assert.deepEqual(
          new Set(inner.addrs),
          new Set([
            "198.51.100.1/24",
            `${formatIpv6(parseIpv6(`fdc1:d00:${net.id}:11::1`))}/64`,
          ]),
        );
        const { stdout } = await run("ip", [
          "-n",
          h1.ns,
          "-j",
          "link",
          "show",
          "ucd311",
        ]);
        const [veth] = JSON.parse(stdout);
        assert.equal(veth.master, "ucb311");
        assert.equal(veth.ifalias, "ucloud-net");
        // Not the host's addresses: the host has none in the subnet, only
        // the route of the metadata service's replies to the VMs, in their
        // own table (none in the main table).
        const addrs = await run("ip", ["-n", h1.ns, "addr", "show"]);
        assert.doesNotMatch(addrs.stdout, /198\.51\.100/);
        const routes = await run("ip", ["-n", h1.ns, "route", "show"]);
        assert.doesNotMatch(routes.stdout, /198\.51\.100/);
        const replies = await run("ip", [
          "-n",
          h1.ns,
          "route",
          "show",
          "table",
          String(REPLY_TABLE),
        ]);
        assert.deepEqual(
          replies.stdout.split("\n").filter((l) => l.includes("198.51.100")),
          ["198.51.100.0/24 dev ucb311 proto static scope link "],
        );
        // radvd tells the VMs to ask DHCPv6.
        assert.match(
          await Deno.readTextFile(`${dir}/net/radvd.conf`),
          /interface ucb311 \{[^}]*AdvManagedFlag on;/,
        );
      },
    );

    await t.step(
      "udhcpc gets exactly the port's IPv4, no router, the metadata route",
      async () => {
        const lease = await dhcp4Lease(x);
        console.log(
          `DHCPv4 lease on x after sync: ${
            (performance.now() - synced).toFixed(0)
          } ms`,
        );
        assert.deepEqual(lease, {
          ip: "198.51.100.2",
          mask: 24,
          router: "",
          serverid: "198.51.100.1",
          lease: 3600,
          staticroutes: "169.254.169.254/32 0.0.0.0",
        });
        assert.equal((await dhcp4Lease(y))?.ip, "198.51.100.3");
        assert.ok(await ping(x, "198.51.100.3"), "x cannot ping y over IPv4");
      },
    );

    await t.step("DHCPv6 by MAC gets exactly the port's IPv6", async () => {
      const t1 = performance.now();
      const answers = await dhcp6(x, "lease");
      console.log(
        `DHCPv6 SOLICIT to REPLY on x: ${
          (performance.now() - t1).toFixed(0)
        } ms`,
      );
      const server = linkLocal((await eth0(dhcpNs)).mac);
      const want = eui64(n4.prefix, x.mac);
      assert.deepEqual(answers, [
        { type: "advertise", server, addrs: [want] },
        { type: "reply", server, addrs: [want] },
      ]);
      // A DUID carrying another MAC changes nothing: the link's MAC counts.
      const other = await dhcp6(y, "lease", {
        duid: "00030001" + "02c10d999999",
      });
      assert.deepEqual(other.at(-1)?.addrs[0], eui64(n4.prefix, y.mac));
    });

    await t.step(
      "a hardware address the server does not know gets no offer",
      async () => {
        assert.deepEqual(offersOf(await dhcp4Offers(x, { waitMs: 1000 })), [
          `198.51.100.2 198.51.100.1 ${(await eth0(dhcpNs)).mac}`,
        ]);
        assert.deepEqual(
          await dhcp4Offers(x, { chaddr: "02:c1:0d:99:99:99", waitMs: 1000 }),
          [],
        );
      },
    );

    await t.step(
      "re-sync and a new driver keep dnsmasq; a changed address restarts it",
      async () => {
        const none = { added: [], removed: [], changed: [] };
        assert.deepEqual(await d.sync(state), none);
        assert.deepEqual(await driver("h1", false).sync(state), none);
        assert.equal(await dnsmasqPid(dir, "n4"), pid);
        const moved = {
          ...state,
          ports: [portOf(x, n4, "198.51.100.20"), state.ports[1]],
        };
        const t1 = performance.now();
        const r = await d.sync(moved);
        console.log(
          `re-sync, one port's IPv4 changed (dnsmasq restarted): ${
            (performance.now() - t1).toFixed(0)
          } ms`,
        );
        assert.deepEqual(
          new Set(r.changed),
          new Set(["nic-" + x.port, "ucd311"]),
        );
        const restarted = await dnsmasqPid(dir, "n4");
        assert.ok(restarted !== null && restarted !== pid, "not restarted");
        await run("ip", ["-n", x.ns, "-4", "addr", "flush", "dev", "eth0"]);
        assert.equal((await dhcp4Lease(x))?.ip, "198.51.100.20");
        // The other port's lease is answered by the new daemon too.
        await run("ip", ["-n", y.ns, "-4", "addr", "flush", "dev", "eth0"]);
        assert.equal((await dhcp4Lease(y))?.ip, "198.51.100.3");
      },
    );

    await t.step(
      "the network's last port takes dnsmasq, its namespace and veth away; teardown leaves nothing",
      async () => {
        const r = await d.sync({ ...state, ports: [] });
        assert.ok(r.removed.includes("ucd311"), JSON.stringify(r));
        assert.equal(await dnsmasqPid(dir, "n4"), null);
        assert.deepEqual(await daemonsIn([dir], /(dnsmasq|radvd)$/), []);
        assert.deepEqual(await dhcpNamespacesOf(net), []);
        assert.ok(!(await linkNames(h1.ns)).some((n) => n.startsWith("ucd")));
        assert.deepEqual([...Deno.readDirSync(`${dir}/net/dhcp`)], []);

        await d.sync(state);
        assert.ok(await dnsmasqPid(dir, "n4"));
        await d.teardown();
        assert.deepEqual(await daemonsIn([dir], /(dnsmasq|radvd)$/), []);
        assert.deepEqual(await dhcpNamespacesOf(net), []);
        assert.deepEqual(
          (await linkNames(h1.ns)).filter((n) => /^uc[bdv]/.test(n)),
          [],
        );
      },
    );
  });
});
