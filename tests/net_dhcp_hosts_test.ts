/**
 * DHCP servers of the host network driver over VXLAN between two hosts
 * (namespaces): each host serves only its own VMs of a network, and the
 * isolation rules are what keeps the other host's server quiet. Servers
 * are real dnsmasq processes, the clients small python DHCPv4/v6 clients.
 */
import assert from "node:assert/strict";
import { eui64, formatIpv6, linkLocal, parseIpv6 } from "../core/netaddr.ts";
import { run } from "../drivers/runner.ts";
import { dhcpNetnsOf, NFT_TABLE } from "../drivers/net/names.ts";
import { DHCP_CHAIN } from "../drivers/net/nft.ts";
import type { HostNetState } from "../drivers/net/types.ts";
import { nftTable } from "./helpers/net_hosts.ts";
import {
  dhcpNamespacesOf,
  dnsmasqPid,
  eth0,
  isolated,
  legacyNet,
  offersOf,
  portOf,
  withHosts,
} from "./helpers/net_dhcp.ts";
import { dhcp4Lease, dhcp4Offers, dhcp6 } from "./helpers/vm_dhcp.ts";
import { ping } from "./helpers/vmns.ts";

Deno.test("NetDriver DHCP: each host serves only its own VMs of a network over VXLAN; the isolation rules are what keeps the other host's server quiet", async (t) => {
  await withHosts(["h1", "h2"], async ({ net, vm, driver, dirs }) => {
    const h1 = net.host("h1"), h2 = net.host("h2");
    const p = legacyNet("p", 0x321, `fdc1:d00:${net.id}:21::/64`);
    // Canonical (the random id may start with 0).
    const far = formatIpv6(parseIpv6(`fdc1:d00:${net.id}:21::9`));
    const a1 = await vm("a1", "h1", 0x21), a2 = await vm("a2", "h2", 0x22);
    // A port on h2 with a1's MAC (as while a1 migrates), its VM not up: h2's
    // server knows a1's MAC and would give it .9 and ::9.
    const twin = await vm("t2", "h2", 0x21, false);
    const s1: HostNetState = {
      networks: [p],
      ports: [portOf(a1, p, "198.51.100.2")],
      peers: {},
    };
    const s2: HostNetState = {
      networks: [p],
      ports: [portOf(a2, p, "198.51.100.3"), {
        ...portOf(twin, p, "198.51.100.9"),
        ipv6: far,
      }],
      peers: {},
    };
    const d1 = driver("h1"), d2 = driver("h2");
    await d1.sync(s1);
    await d2.sync(s2);
    const [pid1, pid2] = [
      await dnsmasqPid(dirs.get("h1")!, "p"),
      await dnsmasqPid(dirs.get("h2")!, "p"),
    ];
    assert.ok(pid1 && pid2, "both hosts run a server");
    const m1 = (await eth0(dhcpNetnsOf(p, h1.ns))).mac;
    const m2 = (await eth0(dhcpNetnsOf(p, h2.ns))).mac;
    const fromH1 = [`198.51.100.2 198.51.100.1 ${m1}`];

    await t.step(
      "every VM gets its address from its own host's server",
      async () => {
        assert.equal((await dhcp4Lease(a1))?.ip, "198.51.100.2");
        assert.equal((await dhcp4Lease(a2))?.ip, "198.51.100.3");
        assert.ok(
          await ping(a1, "198.51.100.3"),
          "a1 cannot ping a2 over VXLAN",
        );

        const before = [await nftTable(h1.ns), await nftTable(h2.ns)];
        assert.deepEqual(offersOf(await dhcp4Offers(a1)), fromH1);
        const v6 = await dhcp6(a1, "solicit");
        assert.ok(v6.length > 0, "no DHCPv6 answer");
        assert.deepEqual(
          [...new Set(v6.map((a) => `${a.server} ${a.addrs[0]}`))],
          [`${linkLocal(m1)} ${eui64(p.prefix, a1.mac)}`],
        );
        const after = [await nftTable(h1.ns), await nftTable(h2.ns)];
        // h1's broadcast OFFER is stopped before h1's VXLAN, a1's DISCOVER
        // before h2's server.
        assert.ok(
          isolated(after[0], "dhcp-out") > isolated(before[0], "dhcp-out"),
          "dhcp-out on h1 did not count",
        );
        assert.ok(
          isolated(after[1], "dhcp-in") > isolated(before[1], "dhcp-in"),
          "dhcp-in on h2 did not count",
        );
      },
    );

    await t.step(
      "with h1's server stopped, a1 gets no answer although h2's server knows its MAC",
      async () => {
        Deno.kill((await dnsmasqPid(dirs.get("h1")!, "p"))!, "SIGTERM");
        while (await dnsmasqPid(dirs.get("h1")!, "p") !== null) {
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.deepEqual(await dhcp4Offers(a1), []);
        assert.deepEqual(await dhcp6(a1, "solicit"), []);
      },
    );

    await t.step(
      "control: without the isolation rules h2's server answers a1",
      async () => {
        for (const h of [h1, h2]) {
          await run("ip", [
            "netns",
            "exec",
            h.ns,
            "nft",
            "flush",
            "chain",
            "bridge",
            NFT_TABLE,
            DHCP_CHAIN,
          ]);
        }
        assert.deepEqual(offersOf(await dhcp4Offers(a1)), [
          `198.51.100.9 198.51.100.1 ${m2}`,
        ]);
        const v6 = await dhcp6(a1, "solicit", { waitMs: 2000 });
        assert.deepEqual(
          [...new Set(v6.map((a) => `${a.server} ${a.addrs[0]}`))],
          [`${linkLocal(m2)} ${far}`],
        );
      },
    );

    await t.step(
      "re-sync restores the rules and h1's server; a1 hears only h1 again",
      async () => {
        const r1 = await d1.sync(s1);
        assert.deepEqual(r1.changed, ["ucd321"], "h1's dnsmasq started again");
        await d2.sync(s2);
        for (const h of [h1, h2]) {
          assert.deepEqual(
            (await nftTable(h.ns))?.chains.get(DHCP_CHAIN)?.rules.map((r) =>
              r.comment
            ),
            ["dhcp-out", "dhcp-in"],
          );
        }
        assert.deepEqual(offersOf(await dhcp4Offers(a1)), fromH1);
        assert.equal(await dnsmasqPid(dirs.get("h2")!, "p"), pid2);
      },
    );

    await t.step("a1 leaves h1: h1's server goes, h2's stays", async () => {
      const r = await d1.sync({ ...s1, ports: [] });
      assert.ok(r.removed.includes("ucd321"), JSON.stringify(r));
      assert.equal(await dnsmasqPid(dirs.get("h1")!, "p"), null);
      assert.deepEqual(await dhcpNamespacesOf(net), [dhcpNetnsOf(p, h2.ns)]);
      assert.equal(await dnsmasqPid(dirs.get("h2")!, "p"), pid2);
    });
  });
});
