/**
 * The host input policy (drivers/net/host_input.ts) against attacks from
 * VM namespaces (tests/helpers/vmns.ts) on hosts that are namespaces on
 * one IPv6 underlay: a VM must not inject frames into another tenant's
 * VXLAN segment through the host's VXLAN socket, nor reach services the
 * host listens on, while VXLAN between hosts, router solicitation,
 * neighbour discovery, ping to the router and DHCP keep working.
 */
import assert from "node:assert/strict";
import { eui64, linkLocal } from "../core/netaddr.ts";
import { HOST_TABLE } from "../drivers/net/host_input.ts";
import { tapName } from "../drivers/net/names.ts";
import { run } from "../drivers/runner.ts";
import type { HostNetState, NetworkSpec } from "../drivers/net/types.ts";
import {
  counted,
  fdbMacs,
  hostTable,
  linkAddrs,
  listener,
  tcpConnects,
  vxlan,
} from "./helpers/host_input.ts";
import { withNetHosts } from "./helpers/net_hosts.ts";
import { ETH, frame } from "./helpers/frames.ts";
import { dhcp4Lease, dhcp6 } from "./helpers/vm_dhcp.ts";
import { capture, marker, sendFrames } from "./helpers/vm_wire.ts";
import { portOf, privateNet } from "./helpers/net_specs.ts";
import { linkUp, nsRun, ping, waitAddress } from "./helpers/vmns.ts";

function mac(n: number): string {
  return `02:c1:0d:00:${(n >> 8).toString(16).padStart(2, "0")}:${
    (n & 0xff).toString(16).padStart(2, "0")
  }`;
}

Deno.test("host input: a VM cannot inject frames into another network's VXLAN segment through the host's VXLAN socket; VXLAN between hosts still passes", async () => {
  await withNetHosts(["h1", "h2"], async ({ net, vms, driver }) => {
    const h1 = net.host("h1"), h2 = net.host("h2");
    const prefix = (n: number) => `fdc1:d00:${net.id}:${n}::/64`;
    const atk = privateNet("atk", 0x301, prefix(1));
    const vic = privateNet("vic", 0x302, prefix(2));
    const vicu = privateNet("vicu", 0x303, prefix(3), {
      mode: "unicast",
      group: undefined,
    });
    const vm = (name: string, host: string, n: number) =>
      vms.create({
        name,
        hostNs: net.host(host).ns,
        port: tapName(mac(n)),
        mac: mac(n),
      });
    const x = await vm("x", "h1", 1);
    const v1 = await vm("v1", "h1", 2), v2 = await vm("v2", "h2", 3);
    const w1 = await vm("w1", "h1", 4), w2 = await vm("w2", "h2", 5);
    const s1: HostNetState = {
      networks: [atk, vic, vicu],
      ports: [portOf(x, atk), portOf(v1, vic), portOf(w1, vicu)],
      peers: { vicu: [h2.address] },
    };
    const s2: HostNetState = {
      networks: [vic, vicu],
      ports: [portOf(v2, vic), portOf(w2, vicu)],
      peers: { vicu: [h1.address] },
    };
    const d1 = driver("h1"), d2 = driver("h2");
    await d1.sync(s1);
    await d2.sync(s2);
    for (
      const [v, n] of [[x, atk], [v1, vic], [v2, vic], [w1, vicu], [
        w2,
        vicu,
      ]] as const
    ) {
      await waitAddress(v, eui64(n.prefix, v.mac), 15_000);
    }
    // Legitimate VXLAN between hosts, both modes.
    assert.ok(
      await ping(v1, eui64(vic.prefix, v2.mac), { waitS: 3 }),
      "v1 -> v2",
    );
    assert.ok(
      await ping(w1, eui64(vicu.prefix, w2.mac), { waitS: 3 }),
      "w1 -> w2",
    );

    const router = await linkAddrs(h1.ns, "ucb301");
    const XLL = linkLocal(x.mac);
    const ROGUE = "02:c1:0d:ee:ee:01";
    const inner = (id: string) =>
      frame.ether(
        "ff:ff:ff:ff:ff:ff",
        ROGUE,
        ETH.ip6,
        frame.udp6("fe80::bad", "ff02::1", 4000, 4001, marker(id)),
      );
    // To the VXLAN port of the router's link-local and of the host's
    // underlay address (reached through the bridge: weak host model).
    const attack = (vni: number, id: string) =>
      [router.ll, h1.address].map((dst, i) =>
        frame.ether(
          router.mac,
          x.mac,
          ETH.ip6,
          frame.udp6(
            XLL,
            dst,
            40000 + i,
            4789,
            vxlan(vni, inner(`${id}-${i}`)),
          ),
        )
      );
    const fdbBefore = await fdbMacs(h1.ns, "ucv302");
    const dropsBefore = await counted(h1.ns, "from-vms");
    const capV = await capture(vms, v1), capW = await capture(vms, w1);
    await sendFrames(x, [...attack(0x302, "mc"), ...attack(0x303, "uc")], {
      repeat: 5,
      gapMs: 20,
    });
    await new Promise((r) => setTimeout(r, 300));
    const gotV = await capV.stop(), gotW = await capW.stop();
    const fdbAfter = await fdbMacs(h1.ns, "ucv302");
    assert.deepEqual(
      { multicast: gotV, unicast: gotW, fdb: fdbAfter },
      { multicast: [], unicast: [], fdb: fdbBefore },
      "frames injected into the victim networks, or their FDB changed",
    );
    assert.ok(
      await counted(h1.ns, "from-vms") >= dropsBefore + 20,
      "drops not counted",
    );

    // From the underlay, but not from a peer of the unicast network (the
    // test network's root namespace): not received, counted.
    const unknownBefore = await counted(h1.ns, "vxlan-unknown");
    const capU = await capture(vms, w1);
    const py = `
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for i in range(5):
    s.sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], 4789))
`;
    const hex = Array.from(
      vxlan(0x303, inner("underlay")),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    await run("python3", ["-c", py, hex, h1.address]);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await capU.stop(), [], "non-peer injected over underlay");
    assert.ok(
      await counted(h1.ns, "vxlan-unknown") >= unknownBefore + 5,
      "non-peer VXLAN not counted",
    );
    // The legitimate VXLAN went through the rules for each mode.
    assert.ok(await counted(h1.ns, "vxlan-unicast") > 0, "no unicast VXLAN");
    assert.ok(await counted(h1.ns, "vxlan-multicast") > 0, "no multicast");
    // Still reachable after the attack.
    assert.ok(
      await ping(v1, eui64(vic.prefix, v2.mac), { waitS: 3 }),
      "v1 -> v2 after",
    );
    assert.ok(
      await ping(w1, eui64(vicu.prefix, w2.mac), { waitS: 3 }),
      "w1 -> w2 after",
    );
  });
});

Deno.test("host input: a VM cannot reach a host service listening on ::, while RS, NS, ping to the router and DHCP still work; re-syncs keep every rule handle", async () => {
  await withNetHosts(["h1"], async ({ net, vms, driver, log }) => {
    const h1 = net.host("h1");
    const applied = () =>
      log.lines.filter((l) => l.includes("host input policy set")).length;
    const n: NetworkSpec = privateNet("n", 0x311, `fdc1:d00:${net.id}:1::/64`, {
      ipv4: "198.51.100.0/24",
      dhcp: { v6: true, v4: true },
    });
    const x = await vms.create({
      name: "x",
      hostNs: h1.ns,
      port: tapName(mac(0x11)),
      mac: mac(0x11),
      up: false,
    });
    // A public network on the admin's bridge, with a VM port and an
    // uplink (not a VM port: the hoster's side of the link).
    const pub: NetworkSpec = {
      id: "pub",
      kind: "public",
      prefix: `fdc1:d00:${net.id}:3::/64`,
      bridge: "pubbr0",
      ra: false,
      dhcp: { v6: false, v4: false },
    };
    await run("ip", ["-n", h1.ns, "link", "add", "pubbr0", "type", "bridge"]);
    await run("ip", ["-n", h1.ns, "link", "set", "pubbr0", "up"]);
    const p = await vms.create({
      name: "p",
      hostNs: h1.ns,
      port: tapName(mac(0x13)),
      mac: mac(0x13),
    });
    const uplink = await vms.create({
      name: "up",
      hostNs: h1.ns,
      port: "upl0",
      mac: mac(0x14),
    });
    await run("ip", ["-n", h1.ns, "link", "set", "upl0", "master", "pubbr0"]);
    await run("ip", ["-n", h1.ns, "link", "set", "upl0", "up"]);
    const state: HostNetState = {
      networks: [n, pub],
      ports: [portOf(x, n, "198.51.100.10"), portOf(p, pub)],
      peers: {},
    };
    const d = driver("h1");
    await d.sync(state);
    const before = await hostTable(h1.ns);
    assert.ok(before, "no host table");
    // The VM boots: its router solicitation is answered (SLAAC).
    await linkUp(x);
    await waitAddress(x, eui64(n.prefix, x.mac), 15_000);

    const router = await linkAddrs(h1.ns, "ucb311");
    const stop = await listener(h1.ns, 2222);
    try {
      const dropsBefore = await counted(h1.ns, "from-vms");
      assert.equal(
        await tcpConnects(x, router.ll, 2222),
        false,
        "VM reached a host service on the router's link-local address",
      );
      assert.equal(
        await tcpConnects(x, h1.address, 2222),
        false,
        "VM reached a host service on the underlay address",
      );
      const pubRouter = await linkAddrs(h1.ns, "pubbr0");
      assert.equal(
        await tcpConnects(p, pubRouter.ll, 2222),
        false,
        "VM on a public network reached a host service",
      );
      assert.ok(
        await tcpConnects(uplink, pubRouter.ll, 2222),
        "the public network's uplink side lost the host",
      );
      assert.ok(
        await counted(h1.ns, "from-vms") > dropsBefore,
        "drops not counted",
      );
    } finally {
      await stop();
    }

    // Ping to the router (neighbour discovery both ways).
    await run("ip", ["-n", x.ns, "neigh", "flush", "dev", "eth0"]);
    await nsRun(x.ns, "busybox", [
      "ping",
      "-6",
      "-c",
      "1",
      "-W",
      "3",
      "-I",
      "eth0",
      router.ll,
    ]);
    // And the host pings the VM (the router of a public network does).
    await nsRun(h1.ns, "busybox", [
      "ping",
      "-6",
      "-c",
      "1",
      "-W",
      "3",
      "-I",
      "ucb311",
      linkLocal(x.mac),
    ]);
    assert.ok(await counted(h1.ns, "nd") > 0, "no RS/NS/NA counted");
    assert.ok(await counted(h1.ns, "icmpv6") > 0, "no ping counted");
    // DHCP from the network's dnsmasq (bridged, never to the host).
    assert.equal((await dhcp4Lease(x))?.ip, "198.51.100.10");
    const v6 = await dhcp6(x, "lease");
    assert.deepEqual(
      v6.map((a) => a.addrs),
      [[eui64(n.prefix, x.mac)], [eui64(n.prefix, x.mac)]],
    );

    // Re-syncs change no rule; a new unicast network with peers only adds
    // set elements; without networks the table goes.
    const none = { added: [], removed: [], changed: [] };
    const setBefore = applied();
    assert.deepEqual(await d.sync(state), none);
    assert.deepEqual(await driver("h1").sync(state), none);
    assert.equal(applied(), setBefore, "a re-sync wrote the host table");
    assert.deepEqual((await hostTable(h1.ns))?.handles, before.handles);
    const u = privateNet("u", 0x312, `fdc1:d00:${net.id}:2::/64`, {
      mode: "unicast",
      group: undefined,
    });
    const y = await vms.create({
      name: "y",
      hostNs: h1.ns,
      port: tapName(mac(0x12)),
      mac: mac(0x12),
    });
    await d.sync({
      networks: [...state.networks, u],
      ports: [...state.ports, portOf(y, u)],
      peers: { u: ["fd00::7", "fd00::8"] },
    });
    await d.sync({
      networks: [...state.networks, u],
      ports: [...state.ports, portOf(y, u)],
      peers: { u: ["fd00::8"] },
    });
    const { stdout } = await run("ip", [
      "netns",
      "exec",
      h1.ns,
      "nft",
      "list",
      "set",
      "inet",
      HOST_TABLE,
      "vxlan_unicast",
    ]);
    assert.match(stdout, /0x312 \. fd00::8/);
    assert.doesNotMatch(stdout, /fd00::7/);
    assert.deepEqual((await hostTable(h1.ns))?.handles, before.handles);
    const setMid = applied();
    await d.sync({
      networks: [...state.networks, u],
      ports: [...state.ports, portOf(y, u)],
      peers: { u: ["fd00::8"] },
    });
    assert.equal(applied(), setMid, "a re-sync with peers wrote the table");
    await d.sync(state);
    assert.deepEqual((await hostTable(h1.ns))?.handles, before.handles);
    await d.sync({ networks: [], ports: [], peers: {} });
    assert.equal(await hostTable(h1.ns), null, "host table left");
    await d.sync(state);
    assert.ok(await hostTable(h1.ns), "host table not made again");
    await d.teardown();
    assert.equal(await hostTable(h1.ns), null, "host table left by teardown");
  });
});
