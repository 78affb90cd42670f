/**
 * DHCP servers of the host network driver on real kernel networking: hosts
 * and VMs are namespaces (tests/helpers/netns.ts, tests/helpers/vmns.ts),
 * the servers are real dnsmasq processes in their DHCP namespaces, the
 * clients busybox udhcpc and small python clients (DHCPv6, and DHCPv4 with
 * any client hardware address, counting every offer).
 */
import assert from "node:assert/strict";
import {
  eui64,
  formatIpv6,
  linkLocal,
  multicastGroup,
  parseIpv6,
} from "../core/netaddr.ts";
import { run } from "../drivers/runner.ts";
import { dhcpNetnsOf, NFT_TABLE, tapName } from "../drivers/net/names.ts";
import { DHCP_CHAIN, type NftTable } from "../drivers/net/nft.ts";
import type {
  HostNetState,
  NetworkSpec,
  PortSpec,
} from "../drivers/net/types.ts";
import type { HostNet } from "./helpers/netns.ts";
import { type NetEnv, nftTable, withNetHosts } from "./helpers/net_hosts.ts";
import { dhcp4Lease, dhcp4Offers, dhcp6 } from "./helpers/vm_dhcp.ts";
import { daemonsIn, ping, type VmNs } from "./helpers/vmns.ts";

// ------------------------------------------------------------ fixtures

function legacyNet(id: string, vni: number, prefix: string): NetworkSpec {
  return {
    id,
    kind: "private",
    prefix,
    ipv4: "198.51.100.0/24",
    vni,
    mode: "multicast",
    group: multicastGroup(vni),
    ra: true,
    dhcp: { v6: true, v4: true },
  };
}

function portOf(vm: VmNs, net: NetworkSpec, ipv4: string): PortSpec {
  return {
    name: vm.port,
    network: net.id,
    mac: vm.mac,
    ipv6: eui64(net.prefix, vm.mac),
    ipv4,
  };
}

function mac(n: number): string {
  return `02:c1:0d:00:01:${n.toString(16).padStart(2, "0")}`;
}

interface Env extends NetEnv {
  vm(name: string, host: string, n: number, up?: boolean): Promise<VmNs>;
}

/**
 * Hosts, VM namespaces and drivers. Afterwards every host is torn down by a
 * new driver, and no dnsmasq, radvd, DHCP namespace or VM may be left.
 */
const withHosts = (names: string[], f: (env: Env) => Promise<void>) =>
  withNetHosts(
    names,
    (env) =>
      f({
        ...env,
        vm: (name, host, n, up = true) =>
          env.vms.create({
            name,
            hostNs: env.net.host(host).ns,
            port: tapName(name, 0),
            mac: mac(n),
            up,
          }),
      }),
    {
      prefix: "ucdhcp",
      extraLeft: async (net) => ({
        "DHCP namespaces": await dhcpNamespacesOf(net),
      }),
    },
  );

/** The DHCP namespaces of the hosts of `net` that exist. */
async function dhcpNamespacesOf(net: HostNet): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) =>
    [...net.hosts.values()].some((h) => n.startsWith(`${h.ns}-ucd`))
  );
}

/** The dnsmasq serving `network` on a host (pidfile checked), or null. */
async function dnsmasqPid(dir: string, network: string) {
  const base = `${dir}/net/dhcp/${network}`;
  const pid = Number(
    await Deno.readTextFile(`${base}/dnsmasq.pid`).catch(() => ""),
  );
  if (!pid) return null;
  try {
    const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    return cmd.includes(`--conf-file=${base}/dnsmasq.conf`) ? pid : null;
  } catch {
    return null;
  }
}

/** Packets counted by the rule with `comment` in the DHCP chain. */
function isolated(t: NftTable | null, comment: string): number {
  assert.ok(t, `no table ${NFT_TABLE}`);
  const rule = t.chains.get(DHCP_CHAIN)?.rules.find((r) =>
    r.comment === comment
  );
  assert.ok(rule, `no rule ${comment} in ${DHCP_CHAIN}`);
  return rule.packets;
}

/** eth0 of a namespace: MAC and global addresses. */
async function eth0(ns: string): Promise<{ mac: string; addrs: string[] }> {
  const { stdout } = await run("ip", ["-n", ns, "-j", "addr", "show", "eth0"]);
  const [l] = JSON.parse(stdout) as {
    address: string;
    addr_info: { local: string; prefixlen: number; scope: string }[];
  }[];
  return {
    mac: l.address,
    addrs: l.addr_info.filter((a) => a.scope === "global").map((a) =>
      `${a.local}/${a.prefixlen}`
    ),
  };
}

async function linkNames(ns: string): Promise<string[]> {
  const { stdout } = await run("ip", ["-n", ns, "-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname);
}

/** Distinct offers as "yiaddr from server via srcMac". */
function offersOf(
  offers: { yiaddr: string; server: string; srcMac: string }[],
) {
  return [...new Set(offers.map((o) => `${o.yiaddr} ${o.server} ${o.srcMac}`))]
    .sort();
}

// ---------------------------------------------------------------- tests

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
        // Not the host's addresses: nothing of the server in the host's routes.
        const routes = await run("ip", ["-n", h1.ns, "route", "show"]);
        assert.doesNotMatch(routes.stdout, /198\.51\.100/);
        // radvd tells the VMs to ask DHCPv6.
        assert.match(
          await Deno.readTextFile(`${dir}/net/radvd.conf`),
          /interface ucb311 \{[^}]*AdvManagedFlag on;/,
        );
      },
    );

    await t.step("udhcpc gets exactly the port's IPv4, no router", async () => {
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
      });
      assert.equal((await dhcp4Lease(y))?.ip, "198.51.100.3");
      assert.ok(await ping(x, "198.51.100.3"), "x cannot ping y over IPv4");
    });

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
