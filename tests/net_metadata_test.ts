/**
 * How a VM reaches the metadata service (drivers/net/bridge_addrs.ts,
 * radvd's and dnsmasq's announcements), on hosts that are network
 * namespaces with the real driver and VMs that are namespaces: the
 * addresses on each bridge, the routes of the replies, and a TCP listener
 * in the host namespace answering the VM on each address.
 */
import assert from "node:assert/strict";
import { canonicalPrefix6, eui64, linkLocal } from "../core/netaddr.ts";
import { REPLY_TABLE } from "../drivers/net/bridge_addrs.ts";
import { METADATA } from "../drivers/net/host_input.ts";
import { run } from "../drivers/runner.ts";
import type { NetworkSpec } from "../drivers/net/types.ts";
import {
  addrsOf,
  fetchLine,
  metadataListener,
  routeGet,
  routesOf,
  rulesOf,
  sniff,
} from "./helpers/metadata_net.ts";
import { legacyNet, portOf, withHosts } from "./helpers/net_dhcp.ts";
import { counted } from "./helpers/host_input.ts";
import { dhcp4Lease } from "./helpers/vm_dhcp.ts";
import { nsRun, python, waitAddress } from "./helpers/vmns.ts";

const [LL, GLOBAL] = METADATA.ipv6;
const ADDRS4 = [`${LL}/64`, `${GLOBAL}/128`, `${METADATA.ipv4}/32`];

/** The metadata addresses among `addrs` (sorted like `addrsOf`). */
const metaOf = (addrs: string[]) =>
  addrs.filter((a) => ADDRS4.includes(a)).sort();

Deno.test("NetDriver metadata: a VM of a legacy private network reaches a host listener at fe80::a9fe:a9fe, fd00:ec2::254 (on-link by RA) and 169.254.169.254 (option 121), its replies with hop limit 1; re-sync changes nothing; the network takes them away", async () => {
  await withHosts(["h1"], async ({ net, vm, vms, driver }) => {
    const h1 = net.host("h1");
    const n = legacyNet("meta", 0x3a1, `fdc1:d00:${net.id}:a1::/64`);
    const x = await vm("x", "h1", 1);
    const state = {
      networks: [n],
      ports: [portOf(x, n, "198.51.100.10")],
      peers: {},
    };
    // The host's own route to a LAN whose subnet the tenant also chose.
    await run("ip", [
      "-n",
      h1.ns,
      "link",
      "add",
      "lan0",
      "type",
      "veth",
      "peer",
      "lan1",
    ]);
    await run("ip", ["-n", h1.ns, "link", "set", "lan1", "up"]);
    await run("ip", ["-n", h1.ns, "link", "set", "lan0", "up"]);
    await run("ip", [
      "-n",
      h1.ns,
      "route",
      "add",
      "198.51.100.0/24",
      "dev",
      "lan0",
    ]);
    const mainBefore = [
      ...await routesOf(h1.ns, "-4"),
      ...await routesOf(h1.ns, "-6"),
    ].sort();
    const d = driver("h1");
    await d.sync(state);
    const br = "ucb3a1";
    assert.deepEqual(metaOf(await addrsOf(h1.ns, br)), [...ADDRS4].sort());
    const routes = [
      ...await routesOf(h1.ns, "-4", REPLY_TABLE),
      ...await routesOf(h1.ns, "-6", REPLY_TABLE),
    ];
    assert.deepEqual(
      routes.sort(),
      [
        `${canonicalPrefix6(n.prefix)} ${br} static`,
        `198.51.100.0/24 ${br} static`,
      ].sort(),
    );
    assert.deepEqual(await rulesOf(h1.ns, "-6"), [`${GLOBAL} ${REPLY_TABLE}`]);
    assert.deepEqual(await rulesOf(h1.ns, "-4"), [
      `${METADATA.ipv4} ${REPLY_TABLE}`,
    ]);
    // The tenant's prefixes are not in the main table: the host's own
    // traffic to them does not go to the bridge, and its LAN route is
    // untouched and used.
    const mainAfter = [
      ...await routesOf(h1.ns, "-4"),
      ...await routesOf(h1.ns, "-6"),
    ].filter((r) => !r.includes(br)).sort();
    assert.deepEqual(mainAfter, mainBefore);
    const ip6 = eui64(n.prefix, x.mac);
    assert.notEqual((await routeGet(h1.ns, [ip6])).dev, br);
    assert.equal((await routeGet(h1.ns, ["198.51.100.10"])).dev, "lan0");
    // Only the service's replies take the bridge.
    assert.equal((await routeGet(h1.ns, [ip6, "from", GLOBAL])).dev, br);
    assert.equal(
      (await routeGet(h1.ns, ["198.51.100.10", "from", METADATA.ipv4])).dev,
      br,
    );

    // A re-sync (also by a new driver) changes nothing.
    const before = await addrsOf(h1.ns, br);
    assert.deepEqual(await driver("h1").sync(state), {
      added: [],
      removed: [],
      changed: [],
    });
    assert.deepEqual(await addrsOf(h1.ns, br), before);

    // The VM learns fd00:ec2::/64 on-link, without an address in it.
    await waitAddress(x, ip6);
    const vmRoutes = await routesOf(x.ns, "-6");
    assert.ok(
      vmRoutes.includes("fd00:ec2::/64 eth0 kernel"),
      `no on-link route from the RA: ${vmRoutes}`,
    );
    assert.ok(
      !(await addrsOf(x.ns, "eth0")).some((a) => a.startsWith("fd00:ec2:")),
      "VM configured an address in the metadata prefix",
    );
    // And 169.254.169.254/32 on-link from DHCPv4 option 121 (udhcpc's
    // event script applies it).
    const lease = await dhcp4Lease(x);
    assert.equal(lease?.staticroutes, `${METADATA.ipv4}/32 0.0.0.0`);
    assert.ok(
      (await routesOf(x.ns, "-4")).includes(`${METADATA.ipv4} eth0 boot`),
    );

    const stop = await metadataListener(h1.ns, [
      `${LL}%${br}`,
      GLOBAL,
      METADATA.ipv4,
    ]);
    const seen = await sniff(vms, x);
    try {
      assert.deepEqual(
        {
          ll: await fetchLine(x, LL),
          global: await fetchLine(x, GLOBAL),
          ipv4: await fetchLine(x, METADATA.ipv4),
        },
        {
          // Deno's listener and peer addresses carry no scope.
          ll: `${LL} ${linkLocal(x.mac)}`,
          global: `${GLOBAL} ${ip6}`,
          ipv4: `${METADATA.ipv4} 198.51.100.10`,
        },
      );
      // Every reply left the host with hop limit (TTL) 1: it goes no
      // further than the VM (IMDSv2's hop limit).
      const tcp = (await seen.stop()).filter((f) => f.kind.startsWith("tcp"));
      assert.ok(tcp.some((f) => f.kind === "tcp6"), "no TCP over IPv6 seen");
      assert.ok(tcp.some((f) => f.kind === "tcp4"), "no TCP over IPv4 seen");
      assert.deepEqual(
        [...new Set(tcp.map((f) => `${f.kind} ${f.hop}`))].sort(),
        ["tcp4 1", "tcp6 1"],
      );
      assert.ok(await counted(h1.ns, "metadata-hoplimit") >= tcp.length);
    } finally {
      await stop();
    }

    await d.sync({ networks: [], ports: [], peers: {} });
    const { stdout } = await run("ip", ["-n", h1.ns, "-j", "link", "show"]);
    assert.ok(!stdout.includes(`"${br}"`), "bridge left");
    assert.deepEqual(await routesOf(h1.ns, "-4", REPLY_TABLE), []);
    assert.deepEqual(await rulesOf(h1.ns, "-6"), []);
    assert.deepEqual(await rulesOf(h1.ns, "-4"), []);
    await run("ip", ["-n", h1.ns, "link", "del", "lan0"]);
  });
});

/** Waits until `dev` in `ns` has no tentative address (10 s at most). */
async function waitNotTentative(ns: string, dev: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { stdout } = await run("ip", [
      "-n",
      ns,
      "-6",
      "addr",
      "show",
      "dev",
      dev,
      "tentative",
    ]);
    if (!stdout.trim()) return;
    assert.ok(Date.now() < deadline, `${dev} stays tentative`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits for one router advertisement in `ns`; its source address. */
async function raSource(ns: string): Promise<string> {
  const py = `
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
while True:
    data, addr = s.recvfrom(2048)
    if data[0] == 134:
        print(addr[0].split("%")[0])
        break
`;
  const { stdout } = await nsRun(ns, await python(), ["-c", py], {
    timeoutMs: 30_000,
  });
  return stdout.trim();
}

Deno.test("NetDriver metadata: radvd sends from the bridge's own link-local address, not fe80::a9fe:a9fe, so a port that is not a tap gets its SLAAC address too", async () => {
  await withHosts(["h1"], async ({ net, vm, vms, dirs, log, driver }) => {
    const h1 = net.host("h1");
    const n = legacyNet("ra", 0x3c1, `fdc1:d00:${net.id}:c1::/64`);
    const x = await vm("x", "h1", 1);
    const state = { networks: [n], ports: [portOf(x, n)], peers: {} };
    await driver("h1").sync(state);
    const br = "ucb3c1";
    const { stdout } = await run("ip", ["-n", h1.ns, "-j", "link", "show", br]);
    const own = linkLocal(JSON.parse(stdout)[0].address);
    assert.equal(await raSource(x.ns), own);

    // A namespace on a veth port of the bridge (not a tap, so
    // metadata-out applies to it) configures itself from the RAs.
    const c = await vms.create({
      name: "c",
      hostNs: h1.ns,
      port: `ucvc${vms.id}`,
      mac: "02:c1:0d:00:01:c0",
    });
    await run("ip", ["-n", h1.ns, "link", "set", c.port, "master", br]);
    await run("ip", ["-n", h1.ns, "link", "set", c.port, "up"]);
    await waitAddress(c, eui64(n.prefix, c.mac), 30_000);
    assert.equal(await raSource(c.ns), own);
    // A re-sync by a new driver leaves radvd as it is (no SIGHUP).
    const conf = `${dirs.get("h1")}/net/radvd.conf`;
    const { mtime } = await Deno.stat(conf);
    const logged = log.lines.length;
    assert.deepEqual(await driver("h1").sync(state), {
      added: [],
      removed: [],
      changed: [],
    });
    assert.deepEqual((await Deno.stat(conf)).mtime, mtime);
    assert.ok(
      !log.lines.slice(logged).some((l) => l.includes("radvd reloaded")),
    );
    await run("ip", ["netns", "del", c.ns]);
  });
});

Deno.test("NetDriver metadata: a public bridge holds the addresses while the host has its network, without routes; a subnet two networks share gets no route", async () => {
  await withHosts(["h1"], async ({ net, vm, driver }) => {
    const h1 = net.host("h1");
    await run("ip", ["-n", h1.ns, "link", "add", "pub0", "type", "bridge"]);
    await run("ip", ["-n", h1.ns, "link", "set", "pub0", "up"]);
    const pub: NetworkSpec = {
      id: "pub",
      kind: "public",
      bridge: "pub0",
      prefix: `fdc1:d00:${net.id}:b0::/64`,
      ipv4: "203.0.113.0/24",
      ra: false,
      dhcp: { v6: false, v4: false },
    };
    const a = legacyNet("a", 0x3b1, `fdc1:d00:${net.id}:b1::/64`);
    const b = legacyNet("b", 0x3b2, `fdc1:d00:${net.id}:b2::/64`);
    const p = await vm("p", "h1", 1), x = await vm("x", "h1", 2);
    const y = await vm("y", "h1", 3);
    const state = {
      networks: [pub, a, b],
      ports: [
        portOf(p, pub, "203.0.113.10"),
        portOf(x, a, "198.51.100.10"),
        portOf(y, b, "198.51.100.11"),
      ],
      peers: {},
    };
    // The admin routes the public network's /64 to its bridge.
    await run("ip", ["-n", h1.ns, "route", "add", pub.prefix, "dev", "pub0"]);
    const d = driver("h1");
    await d.sync(state);
    // The host's own traffic through the public bridge never takes a
    // metadata address as its source (metadata-out would drop it): the
    // bridge's own link-local, even to a neighbour whose address is closer
    // to fe80::a9fe:a9fe, and not fd00:ec2::254 to a ULA.
    await waitNotTentative(h1.ns, "pub0");
    const [own] = (await addrsOf(h1.ns, "pub0")).filter((a) =>
      a.startsWith("fe80:") && a !== `${LL}/64`
    );
    assert.deepEqual(
      await routeGet(h1.ns, ["fe80::a9fe:a9fd", "oif", "pub0"]),
      { dev: "pub0", prefsrc: own.replace("/64", "") },
    );
    const toUla = await routeGet(h1.ns, [pub.prefix.replace("::/64", "::10")]);
    assert.equal(toUla.dev, "pub0");
    assert.notEqual(toUla.prefsrc, GLOBAL);
    for (const br of ["pub0", "ucb3b1", "ucb3b2"]) {
      assert.deepEqual(
        metaOf(await addrsOf(h1.ns, br)),
        [...ADDRS4].sort(),
        br,
      );
    }
    const routes = [
      ...await routesOf(h1.ns, "-4", REPLY_TABLE),
      ...await routesOf(h1.ns, "-6", REPLY_TABLE),
    ];
    assert.deepEqual(routes.sort(), [
      `${canonicalPrefix6(a.prefix)} ucb3b1 static`,
      `${canonicalPrefix6(b.prefix)} ucb3b2 static`,
    ]);
    assert.deepEqual(await d.sync(state), {
      added: [],
      removed: [],
      changed: [],
    });

    // An address made preferred (by an older release) is deprecated again.
    await run("ip", [
      ...["-n", h1.ns, "addr", "change", `${GLOBAL}/128`, "dev", "pub0"],
      ...["nodad", "preferred_lft", "forever"],
    ]);
    await d.sync(state);
    const { stdout: dep } = await run("ip", [
      ...["-n", h1.ns, "-6", "addr", "show", "dev", "pub0", "deprecated"],
    ]);
    assert.match(dep, /fd00:ec2::254\/128/);
    assert.match(dep, /fe80::a9fe:a9fe\/64/);
    // b leaves: a's subnet is unambiguous now.
    await d.sync({
      ...state,
      networks: [pub, a],
      ports: state.ports.slice(0, 2),
    });
    assert.ok(
      (await routesOf(h1.ns, "-4", REPLY_TABLE)).includes(
        "198.51.100.0/24 ucb3b1 static",
      ),
    );
    // The public network leaves: its bridge stays, without the addresses.
    await d.sync({
      networks: [a],
      ports: [portOf(x, a, "198.51.100.10")],
      peers: {},
    });
    assert.deepEqual(metaOf(await addrsOf(h1.ns, "pub0")), []);
    await d.sync({ ...state, ports: [portOf(p, pub, "203.0.113.10")] });
    assert.deepEqual(metaOf(await addrsOf(h1.ns, "pub0")), [...ADDRS4].sort());
    // Teardown leaves the public bridge without them too, and no rule.
    await driver("h1").teardown();
    assert.deepEqual(metaOf(await addrsOf(h1.ns, "pub0")), []);
    assert.deepEqual(await rulesOf(h1.ns, "-6"), []);
    assert.deepEqual(await routesOf(h1.ns, "-6", REPLY_TABLE), []);
    await run("ip", ["-n", h1.ns, "link", "del", "pub0"]);
  });
});
