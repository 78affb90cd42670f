/**
 * Tenant isolation, tried as an attacker in a shared network (issue 17,
 * holes 3 to 5): VMs are namespaces on one host's bridge
 * (tests/helpers/attack_env.ts), attacks are raw frames. Each attack must
 * fail (not received, FDB and neighbour caches unchanged, the dropping
 * rule counted it) while the same traffic with the attacker's own
 * addresses still passes. DHCP attacks (holes 6 and 9) are in
 * tests/net_attack_dhcp_test.ts.
 */
import assert from "node:assert/strict";
import { eui64, linkLocal } from "../core/netaddr.ts";
import { bridgeOf, nicChain } from "../drivers/net/names.ts";
import { run } from "../drivers/runner.ts";
import { attack } from "./helpers/attack_frames.ts";
import {
  fdb,
  ingressTable,
  mac,
  neighbour,
  portOf,
  privateNet,
  withAttackHost,
} from "./helpers/attack_env.ts";
import { ETH, frame } from "./helpers/frames.ts";
import { marker as m, sendFrames } from "./helpers/vm_wire.ts";
import { nsRun } from "./helpers/vmns.ts";
import { waitFor } from "./helpers/cluster.ts";

const e = frame.ether;

Deno.test("NetDriver attack: frames to 01:80:c2:00:00:0x (LLDP) teach the bridge nothing: no MAC takeover, no FDB growth", async () => {
  await withAttackHost("ucatk3", async (env) => {
    const net = privateNet("n", 0x301, env.prefix(1));
    const x = await env.vm("x", 0x31), y = await env.vm("y", 0x32);
    const z = await env.vm("z", 0x33);
    await env.sync([net], [portOf(x, net), portOf(y, net), portOf(z, net)]);
    const br = bridgeOf(net);
    const Y6 = eui64(net.prefix, y.mac), Z6 = eui64(net.prefix, z.mac);
    const X6 = eui64(net.prefix, x.mac);
    // y has talked: the bridge knows y's MAC on y's port.
    await sendFrames(y, [
      e(z.mac, y.mac, ETH.ip6, frame.udp6(Y6, Z6, 4000, 4001, m("hello"))),
    ]);
    assert.equal((await fdb(env.ns, br)).get(y.mac), y.port);
    const before = await env.counted(x.port, "link-local");

    // The takeover: LLDP (and the other reserved groups) with y's MAC,
    // and LLDP from 40 made-up MACs (FDB growth).
    const groups = ["00", "02", "03", "0e", "0f"].map((g) =>
      attack.linkLocal(y.mac, m(`ll-${g}`), `01:80:c2:00:00:${g}`)
    );
    const random = Array.from(
      { length: 40 },
      (_, i) => attack.linkLocal(mac(0x3f00 + i), m("ll-random")),
    );
    await sendFrames(x, [...groups, ...random]);
    const table = await fdb(env.ns, br);
    assert.equal(table.get(y.mac), y.port, "y's MAC moved to another port");
    const learned = [...table.keys()].filter((k) =>
      k.startsWith("02:c1:0d:00:3f")
    );
    assert.deepEqual(learned, [], "made-up MACs learned");

    // Frames for y still reach y, and only y.
    const [atY, atX] = await env.exchange(z, [
      e(y.mac, z.mac, ETH.ip6, frame.udp6(Z6, Y6, 4000, 4001, m("to-y"))),
    ], [y, x]);
    assert.equal(atY.get("to-y"), 3, "y lost its frames");
    assert.equal(atX.get("to-y"), undefined, "x received y's frames");
    // Nobody received the reserved frames; the attacker's own traffic passes.
    const [atY2] = await env.exchange(x, [
      ...groups,
      e(y.mac, x.mac, ETH.ip6, frame.udp6(X6, Y6, 4000, 4001, m("legit"))),
    ], [y]);
    assert.deepEqual([...atY2.keys()], ["legit"]);
    assert.ok(
      (await env.counted(x.port, "link-local")) - before >= 45 + 15,
      "reserved frames not counted",
    );
    const drops = await env.driver().portDrops();
    assert.ok(drops.get(x.port)! >= 60, "x's drops not reported");
    assert.equal(drops.get(y.port), 0, "y dropped something");
    // Nor does the VXLAN device or an uplink teach the bridge by them.
    const { stdout } = await run("ip", [
      "-n",
      env.ns,
      "-d",
      "-j",
      "link",
      "show",
      br,
    ]);
    assert.equal(
      JSON.parse(stdout)[0].linkinfo.info_data.no_linklocal_learn,
      1,
    );

    // A re-sync keeps the ingress chains (handles, counters); a port that
    // goes takes its chain; teardown takes the table.
    const handles = async () =>
      [...(await ingressTable(env.ns))!.chains.values()].map((c) => [
        c.name,
        c.handle,
        ...c.rules.map((r) => r.handle),
      ]);
    const h0 = await handles();
    assert.equal(h0.length, 3);
    await env.sync([net], [portOf(x, net), portOf(y, net), portOf(z, net)]);
    await env.sync([net], [portOf(x, net), portOf(y, net), portOf(z, net)]);
    assert.deepEqual(await handles(), h0);
    assert.ok((await env.counted(x.port, "link-local")) - before >= 60);
    await env.sync([net], [portOf(x, net), portOf(y, net)]);
    assert.deepEqual(
      await handles(),
      h0.filter(([c]) => c !== nicChain(z.port)),
    );
    await env.driver().teardown();
    assert.equal(await ingressTable(env.ns), null);
  });
});

Deno.test("NetDriver attack: a VM claims only its own link-local address; NAs only for its own addresses, never for a neighbour, the metadata or the router address", async () => {
  await withAttackHost("ucatk4", async (env) => {
    const net = privateNet("n", 0x302, env.prefix(2));
    const x = await env.vm("x", 0x41), y = await env.vm("y", 0x42);
    const z = await env.vm("z", 0x43);
    await env.sync([net], [portOf(x, net), portOf(y, net), portOf(z, net)]);
    const XLL = linkLocal(x.mac), YLL = linkLocal(y.mac);
    const ZLL = linkLocal(z.mac), X6 = eui64(net.prefix, x.mac);
    // The DHCP server's address of the network (`<prefix>::1`) and metadata.
    const META = "fe80::a9fe:a9fe", ROUTER = net.prefix.replace("/64", "1");
    const ALL = "33:33:00:00:00:01";
    // z knows y's link-local address.
    await nsRun(z.ns, "busybox", [
      "ping",
      "-6",
      "-c",
      "1",
      "-W",
      "3",
      "-I",
      "eth0",
      YLL,
    ]);
    assert.equal(await neighbour(z, YLL), y.mac);
    const nd0 = await env.counted(x.port, "nd-spoof");
    const ip0 = await env.counted(x.port, "ip6-spoof");

    const attacks = [
      // An unsolicited NA with override: y's link-local is now at x.
      e(ALL, x.mac, ETH.ip6, frame.na(XLL, x.mac, YLL, m("na-neighbour"))),
      e(ALL, x.mac, ETH.ip6, frame.na(XLL, x.mac, META, m("na-metadata"))),
      e(ALL, x.mac, ETH.ip6, frame.na(XLL, x.mac, ROUTER, m("na-router"))),
      e(
        z.mac,
        x.mac,
        ETH.ip6,
        frame.udp6("fe80::1", ZLL, 4000, 4001, m("src-foreign-ll")),
      ),
      e(
        z.mac,
        x.mac,
        ETH.ip6,
        frame.udp6(META, ZLL, 4000, 4001, m("src-metadata")),
      ),
      e(
        z.mac,
        x.mac,
        ETH.ip6,
        frame.na(YLL, x.mac, YLL, m("src-neighbour-ll")),
      ),
    ];
    const legit = [
      e(z.mac, x.mac, ETH.ip6, frame.udp6(XLL, ZLL, 4000, 4001, m("legit-ll"))),
      e(ALL, x.mac, ETH.ip6, frame.na(XLL, x.mac, XLL, m("legit-na-ll"))),
      e(ALL, x.mac, ETH.ip6, frame.na(XLL, x.mac, X6, m("legit-na-global"))),
    ];
    const [atZ] = await env.exchange(x, [...attacks, ...legit], [z]);
    assert.deepEqual(
      new Map(atZ),
      new Map([["legit-ll", 3], ["legit-na-ll", 3], ["legit-na-global", 3]]),
      "z received exactly x's legitimate frames",
    );
    assert.equal(await neighbour(z, YLL), y.mac, "z's cache poisoned");
    assert.ok(
      (await env.counted(x.port, "nd-spoof")) - nd0 >= 9,
      "NAs not counted",
    );
    assert.ok(
      (await env.counted(x.port, "ip6-spoof")) - ip0 >= 9,
      "sources not counted",
    );
  });
});

Deno.test("NetDriver attack: `::` only for DAD of the port's own addresses and MLD: a neighbour's DAD cannot be denied", async () => {
  await withAttackHost("ucatk5", async (env) => {
    const net = privateNet("n", 0x303, env.prefix(3));
    const x = await env.vm("x", 0x51), y = await env.vm("y", 0x52);
    const w = await env.vm("w", 0x53, { up: false });
    await env.sync([net], [portOf(x, net), portOf(y, net), portOf(w, net)]);
    const X6 = eui64(net.prefix, x.mac), XLL = linkLocal(x.mac);
    const W6 = eui64(net.prefix, w.mac), WLL = linkLocal(w.mac);
    const Y6 = eui64(net.prefix, y.mac);
    const u0 = await env.counted(x.port, "ip6-unspec");

    // x answers every DAD probe of w with its own probe for the same target.
    const flood = sendFrames(x, [
      attack.ns(x.mac, "::", W6, m("dad-deny")),
      attack.ns(x.mac, "::", WLL, m("dad-deny")),
    ], { repeat: 250, gapMs: 20 });
    await nsRun(w.ns, "sysctl", [
      "-q",
      "-w",
      "net.ipv6.conf.eth0.accept_dad=1",
      "net.ipv6.conf.eth0.dad_transmits=3",
      "net.ipv6.neigh.eth0.retrans_time_ms=300",
    ]);
    await nsRun(w.ns, "ip", ["link", "set", "eth0", "up"]);
    // DAD is over when an address is no longer tentative or has failed.
    const dad = async () => {
      const { stdout } = await nsRun(w.ns, "ip", [
        "-j",
        "-6",
        "addr",
        "show",
        "dev",
        "eth0",
      ]);
      const info = JSON.parse(stdout)[0].addr_info as Record<string, unknown>[];
      return Object.fromEntries([WLL, W6].map((addr) => {
        const a = info.find((a) => a.local === addr);
        return [
          addr,
          !a
            ? "absent"
            : a.dadfailed
            ? "dadfailed"
            : a.tentative
            ? "tentative"
            : "ok",
        ];
      }));
    };
    let state = await dad();
    await waitFor(
      "w's DAD over",
      async () => {
        state = await dad();
        return Object.values(state).every((s) => s === "ok") ||
          Object.values(state).includes("dadfailed");
      },
      30_000,
      100,
    );
    await flood;
    assert.deepEqual(state, { [WLL]: "ok", [W6]: "ok" }, "w's DAD failed");

    const attacks = [
      e(
        y.mac,
        x.mac,
        ETH.ip6,
        frame.udp6("::", Y6, 4000, 4001, m("udp-unspec")),
      ),
      attack.ns(x.mac, "::", Y6, m("dad-foreign")),
      e(
        "33:33:00:00:00:01",
        x.mac,
        ETH.ip6,
        frame.na("::", x.mac, X6, m("na-unspec")),
      ),
    ];
    const legit = [
      attack.ns(x.mac, "::", X6, m("dad-own")),
      attack.ns(x.mac, "::", XLL, m("dad-own-ll")),
      attack.mldReport(x.mac, "::", X6, m("mld-unspec")),
      attack.ns(x.mac, XLL, Y6, m("ns-resolve")),
    ];
    const [atY] = await env.exchange(x, [...attacks, ...legit], [y]);
    assert.deepEqual(
      new Map(atY),
      new Map([["dad-own", 3], ["dad-own-ll", 3], ["mld-unspec", 3], [
        "ns-resolve",
        3,
      ]]),
      "y received exactly x's legitimate frames",
    );
    assert.ok(
      (await env.counted(x.port, "ip6-unspec")) - u0 >= 9 + 500,
      "not counted",
    );
  });
});

Deno.test("NetDriver attack: 0.0.0.0 only for ARP probes of the port's own IPv4 address, DHCP requests and IGMP: a neighbour's address conflict detection cannot be denied", async () => {
  await withAttackHost("ucatk5v4", async (env) => {
    const net = privateNet("n4", 0x304, env.prefix(4), {
      ipv4: "198.51.100.0/24",
    });
    const x = await env.vm("x", 0x54, { ipv4: "198.51.100.10/24" });
    const y = await env.vm("y", 0x55, { ipv4: "198.51.100.11/24" });
    await env.sync([net], [
      portOf(x, net, "198.51.100.10"),
      portOf(y, net, "198.51.100.11"),
    ]);
    const BCAST = "ff:ff:ff:ff:ff:ff", ZERO = "00:00:00:00:00:00";
    const probe = (target: string, id: string) =>
      e(
        BCAST,
        x.mac,
        ETH.arp,
        frame.arp(1, x.mac, "0.0.0.0", ZERO, target, m(id)),
      );
    const u0 = await env.counted(x.port, "ip4-unspec");
    const [atY] = await env.exchange(x, [
      // y probes its address (RFC 5227) and hears x probing it too.
      probe("198.51.100.11", "probe-neighbour"),
      e(
        y.mac,
        x.mac,
        ETH.ip4,
        frame.udp4("0.0.0.0", "198.51.100.11", 5000, 5001, m("udp-unspec")),
      ),
      probe("198.51.100.10", "probe-own"),
      attack.dhcp4Client(x.mac, x.mac, 1, [], m("dhcp-discover")),
    ], [y]);
    assert.deepEqual(
      new Map(atY),
      new Map([["probe-own", 3], ["dhcp-discover", 3]]),
      "y received exactly x's legitimate frames",
    );
    assert.ok(
      (await env.counted(x.port, "ip4-unspec")) - u0 >= 6,
      "not counted",
    );
  });
});
