/**
 * The host network driver on real kernel networking: hosts are network
 * namespaces on one IPv6 ULA underlay (tests/helpers/netns.ts), VMs are
 * namespaces whose eth0 is a veth to a port in a host namespace
 * (tests/helpers/vmns.ts). Real bridges, VXLAN, nftables and radvd; spoofed
 * frames are crafted byte by byte and must be counted by the rule named
 * for their case AND never reach the peer VM, while the same traffic with
 * the right addresses does.
 */
import assert from "node:assert/strict";
import { eui64, linkLocal, multicastGroup } from "../core/netaddr.ts";
import { run } from "../drivers/runner.ts";
import { detectUnderlay } from "../drivers/net/underlay.ts";
import { nicChain, tapName } from "../drivers/net/names.ts";
import type { NftTable } from "../drivers/net/nft.ts";
import type {
  HostNetState,
  NetworkSpec,
  PortSpec,
} from "../drivers/net/types.ts";
import { type NetEnv, nftTable, withNetHosts } from "./helpers/net_hosts.ts";
import { ETH, frame } from "./helpers/frames.ts";
import { capture, marker, sendFrames } from "./helpers/vm_wire.ts";
import {
  daemonsIn,
  globalAddrs,
  linkUp,
  ping,
  type VmNs,
  waitAddress,
} from "./helpers/vmns.ts";

// ------------------------------------------------------------ fixtures

function privateNet(
  id: string,
  vni: number,
  prefix: string,
  opts: Partial<NetworkSpec> = {},
): NetworkSpec {
  return {
    id,
    kind: "private",
    prefix,
    vni,
    mode: "multicast",
    group: multicastGroup(vni),
    ra: true,
    dhcp: { v6: false, v4: false },
    ...opts,
  };
}

function portOf(vm: VmNs, net: NetworkSpec, ipv4?: string): PortSpec {
  return {
    name: vm.port,
    network: net.id,
    mac: vm.mac,
    ipv6: eui64(net.prefix, vm.mac),
    ...(ipv4 ? { ipv4 } : {}),
  };
}

function mac(n: number): string {
  return `02:c1:0d:00:${(n >> 8).toString(16).padStart(2, "0")}:${
    (n & 0xff).toString(16).padStart(2, "0")
  }`;
}

type Env = NetEnv;

/** Hosts, VM namespaces and drivers; everything checked gone afterwards. */
const withHosts = (names: string[], f: (env: Env) => Promise<void>) =>
  withNetHosts(names, f);

/** Packets counted by the rules with `comment` in `chain` (summed). */
function counted(t: NftTable | null, chain: string, comment: string): number {
  const rules =
    t?.chains.get(chain)?.rules.filter((r) => r.comment === comment) ??
      [];
  assert.ok(rules.length > 0, `no rule ${comment} in ${chain}`);
  return rules.reduce((n, r) => n + r.packets, 0);
}

/** Rule handles per chain, for "nothing was replaced" checks. */
function handles(t: NftTable | null): Record<string, number[]> {
  return Object.fromEntries(
    [...t?.chains.values() ?? []].map((
      c,
    ) => [c.name, c.rules.map((r) => r.handle)]),
  );
}

interface Link {
  ifname: string;
  master?: string;
  mtu: number;
  flags: string[];
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

async function links(ns: string): Promise<Map<string, Link>> {
  const { stdout } = await run("ip", ["-n", ns, "-d", "-j", "link", "show"]);
  return new Map((JSON.parse(stdout) as Link[]).map((l) => [l.ifname, l]));
}

async function fdbPeers(ns: string, dev: string): Promise<string[]> {
  const { stdout } = await run("bridge", [
    "-n",
    ns,
    "-j",
    "fdb",
    "show",
    "dev",
    dev,
  ]);
  return (JSON.parse(stdout) as { mac: string; dst?: string }[])
    .filter((e) => e.mac === "00:00:00:00:00:00" && e.dst).map((e) => e.dst!);
}

async function sysctl(ns: string, key: string): Promise<string> {
  const { stdout } = await run("ip", [
    "netns",
    "exec",
    ns,
    "sysctl",
    "-n",
    key,
  ]);
  return stdout.trim();
}

// ---------------------------------------------------------------- tests

Deno.test("NetDriver: one private network spans hosts over VXLAN (multicast and unicast), SLAAC from radvd, other networks isolated", async () => {
  await withHosts(["h1", "h2"], async ({ net, vms, driver }) => {
    const h1 = net.host("h1"), h2 = net.host("h2");
    assert.deepEqual(await detectUnderlay(undefined, { netns: h1.ns }), {
      device: "eth0",
      address: h1.address,
    });
    assert.deepEqual(await detectUnderlay("eth0", { netns: h2.ns }), {
      device: "eth0",
      address: h2.address,
    });
    assert.equal(await detectUnderlay("lo", { netns: h1.ns }), null);

    const prefix = (n: number) => `fdc1:d00:${net.id}:${n}::/64`;
    const mc = privateNet("mc", 0x101, prefix(1));
    const uc = privateNet("uc", 0x102, prefix(2), {
      mode: "unicast",
      group: undefined,
    });
    // Same prefix as `mc` on purpose: only the VXLAN segment separates them.
    const other = privateNet("other", 0x103, prefix(1));

    const vm = (name: string, host: string, n: number) =>
      vms.create({
        name,
        hostNs: net.host(host).ns,
        port: tapName(name, 0),
        mac: mac(n),
      });
    const a1 = await vm("a1", "h1", 1), a2 = await vm("a2", "h2", 2);
    const b1 = await vm("b1", "h1", 3), b2 = await vm("b2", "h2", 4);
    const c2 = await vm("c2", "h2", 5);

    const s1: HostNetState = {
      networks: [mc, uc],
      ports: [portOf(a1, mc), portOf(b1, uc)],
      peers: { uc: [h2.address, h1.address] },
    };
    const s2: HostNetState = {
      networks: [mc, uc, other],
      ports: [portOf(a2, mc), portOf(b2, uc), portOf(c2, other)],
      peers: { uc: [h1.address] },
    };
    const d1 = driver("h1"), d2 = driver("h2");
    let t = performance.now();
    const r1 = await d1.sync(s1);
    const syncMs = performance.now() - t;
    const syncedAt = performance.now();
    await d2.sync(s2);
    console.log(
      `sync of 2 new networks + 2 ports on h1: ${syncMs.toFixed(0)} ms`,
    );
    assert.deepEqual(
      new Set(r1.added),
      new Set([
        "ucb101",
        "ucv101",
        "ucb102",
        "ucv102",
        "nic-" + a1.port,
        "nic-" + b1.port,
        "radvd",
      ]),
    );

    // SLAAC from radvd's RA: the EUI-64 address of the VM's MAC.
    await waitAddress(a1, eui64(mc.prefix, a1.mac), 15_000);
    console.log(
      `RA to SLAAC on a1 after sync: ${
        (performance.now() - syncedAt).toFixed(0)
      } ms`,
    );
    assert.deepEqual(await globalAddrs(a1), [eui64(mc.prefix, a1.mac)]);
    for (const [v, n] of [[a2, mc], [b1, uc], [b2, uc], [c2, other]] as const) {
      await waitAddress(v, eui64(n.prefix, v.mac), 15_000);
    }
    // The VXLAN MTU: underlay 1500 - 70, on the bridge and advertised.
    const l1 = await links(h1.ns);
    assert.equal(l1.get("ucb101")?.mtu, 1430);
    assert.equal(l1.get("ucv101")?.master, "ucb101");
    assert.equal(l1.get(a1.port)?.master, "ucb101");
    assert.equal(await sysctl(a1.ns, "net.ipv6.conf.eth0.mtu"), "1430");
    // The host does not configure itself from tenant RAs.
    assert.equal(await sysctl(h1.ns, "net.ipv6.conf.ucb101.accept_ra"), "0");
    assert.equal(await sysctl(h1.ns, "net.ipv6.conf.ucb101.autoconf"), "0");
    assert.equal(
      await sysctl(h1.ns, `net.ipv6.conf.${a1.port}.disable_ipv6`),
      "1",
    );

    // Multicast mode: a1 (h1) <-> a2 (h2).
    assert.ok(
      await ping(a1, eui64(mc.prefix, a2.mac), { waitS: 2 }),
      "a1 -> a2",
    );
    // Unicast mode: the peer is an all-zero FDB entry (own address skipped).
    assert.deepEqual(await fdbPeers(h1.ns, "ucv102"), [h2.address]);
    assert.ok(
      await ping(b1, eui64(uc.prefix, b2.mac), { waitS: 2 }),
      "b1 -> b2",
    );
    // `other` has the same prefix as `mc` but is another segment.
    assert.deepEqual(
      await Promise.all([
        ping(c2, eui64(mc.prefix, a1.mac)),
        ping(c2, eui64(mc.prefix, a2.mac)),
        ping(a2, eui64(other.prefix, c2.mac)),
      ]),
      [false, false, false],
    );

    // A new network and port on a host that has some: timed, and the VM
    // "boots" (link up) after the sync, as a qemu guest would.
    const late = privateNet("late", 0x104, prefix(4));
    const e1 = await vms.create({
      name: "e1",
      hostNs: h1.ns,
      port: tapName("e1", 0),
      mac: mac(6),
      up: false,
    });
    t = performance.now();
    const r = await d1.sync({
      ...s1,
      networks: [...s1.networks, late],
      ports: [...s1.ports, portOf(e1, late)],
    });
    console.log(
      `sync of 1 new network + 1 port (radvd reloaded): ${
        (performance.now() - t).toFixed(0)
      } ms`,
    );
    assert.deepEqual(
      new Set(r.added),
      new Set(["ucb104", "ucv104", nicChain(e1.port)]),
    );
    t = performance.now();
    await linkUp(e1);
    await waitAddress(e1, eui64(late.prefix, e1.mac), 15_000);
    console.log(
      `VM link up to SLAAC address (RS, RA): ${
        (performance.now() - t).toFixed(0)
      } ms`,
    );
    const back = await d1.sync(s1);
    assert.deepEqual(
      new Set(back.removed),
      new Set(["ucb104", "ucv104", e1.port, nicChain(e1.port)]),
    );

    // Without the peer, unicast mode has no path; with it again, it has.
    await d1.sync({ ...s1, peers: {} });
    assert.deepEqual(await fdbPeers(h1.ns, "ucv102"), []);
    assert.equal(await ping(b1, eui64(uc.prefix, b2.mac)), false);
    t = performance.now();
    assert.deepEqual(await d1.sync(s1), {
      added: [],
      removed: [],
      changed: [],
    });
    console.log(
      `re-sync with one FDB peer added: ${
        (performance.now() - t).toFixed(0)
      } ms`,
    );
    assert.ok(
      await ping(b1, eui64(uc.prefix, b2.mac), { waitS: 3 }),
      "b1 -> b2 again",
    );
  });
});

/** Markers received, counted. */
function tally(markers: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of markers) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

Deno.test("NetDriver: port firewall drops every spoofing case (counted, never received) and keeps its rules across re-syncs; removal and teardown leave nothing", async (t) => {
  await withHosts(["h1"], async ({ net, vms, driver, dirs }) => {
    const h1 = net.host("h1");
    const prefix = (n: number) => `fdc1:d00:${net.id}:${n}::/64`;
    const n6 = privateNet("n6", 0x201, prefix(1));
    const n4 = privateNet("n4", 0x202, prefix(2), { ipv4: "198.51.100.0/24" });
    const vm = (name: string, n: number, ipv4?: string) =>
      vms.create({
        name,
        hostNs: h1.ns,
        port: tapName(name, 0),
        mac: mac(n),
        ipv4,
      });
    const x = await vm("x", 0x11), y = await vm("y", 0x12);
    const x4 = await vm("x4", 0x13, "198.51.100.10/24");
    const y4 = await vm("y4", 0x14, "198.51.100.11/24");
    // A port the driver must create itself (a tap, as for qemu).
    const tapPort: PortSpec = {
      name: tapName("tapvm", 1),
      network: n6.id,
      mac: mac(0x16),
      ipv6: eui64(n6.prefix, mac(0x16)),
    };
    const state: HostNetState = {
      networks: [n6, n4],
      ports: [
        portOf(x, n6),
        portOf(y, n6),
        portOf(x4, n4, "198.51.100.10"),
        portOf(y4, n4, "198.51.100.11"),
        tapPort,
      ],
      peers: {},
    };
    // No underlay: one-host networks (bridge only).
    const d = driver("h1", false);
    const report = await d.sync(state);
    assert.ok(
      report.added.includes("ucb201") && report.added.includes(tapPort.name),
    );
    assert.ok(
      !report.added.some((n) => n.startsWith("ucv")),
      "no VXLAN without underlay",
    );
    let l = await links(h1.ns);
    assert.equal(l.get(tapPort.name)?.linkinfo?.info_kind, "tun");
    assert.equal(l.get(tapPort.name)?.master, "ucb201");
    await waitAddress(y, eui64(n6.prefix, y.mac), 15_000);

    const X6 = eui64(n6.prefix, x.mac), Y6 = eui64(n6.prefix, y.mac);
    const XLL = linkLocal(x.mac), YLL = linkLocal(y.mac);
    const X46 = eui64(n4.prefix, x4.mac), Y46 = eui64(n4.prefix, y4.mac);
    const SPOOF = "02:c1:0d:99:99:99", BCAST = "ff:ff:ff:ff:ff:ff";
    const ALL_NODES = "33:33:00:00:00:01", ZERO = "00:00:00:00:00:00";
    const ROGUE = `fdc1:d00:${net.id}:99::/64`;
    const m = marker;
    const e = frame.ether;

    await t.step(
      "spoofing is dropped and counted; legitimate traffic passes",
      async () => {
        // A port named like a tap but unknown to the driver: fail-closed.
        const z = await vm("z", 0x15);
        await run("ip", [
          "-n",
          h1.ns,
          "link",
          "set",
          z.port,
          "master",
          "ucb201",
          "up",
        ]);

        const fromX = {
          "legit-udp6": e(
            y.mac,
            x.mac,
            ETH.ip6,
            frame.udp6(X6, Y6, 4000, 4001, m("legit-udp6")),
          ),
          "legit-na": e(
            ALL_NODES,
            x.mac,
            ETH.ip6,
            frame.na(X6, x.mac, X6, m("legit-na")),
          ),
          "legit-dhcp6-client": e(
            "33:33:00:01:00:02",
            x.mac,
            ETH.ip6,
            frame.udp6(XLL, "ff02::1:2", 546, 547, m("legit-dhcp6-client")),
          ),
          "mac-spoof": e(
            y.mac,
            SPOOF,
            ETH.ip6,
            frame.udp6(X6, Y6, 4000, 4001, m("mac-spoof")),
          ),
          "ip6-spoof": e(
            y.mac,
            x.mac,
            ETH.ip6,
            frame.udp6(
              eui64(n6.prefix, "02:c1:0d:66:66:66"),
              Y6,
              4000,
              4001,
              m("ip6-spoof"),
            ),
          ),
          "ra": e(
            ALL_NODES,
            x.mac,
            ETH.ip6,
            frame.ra(XLL, x.mac, ROGUE, m("ra")),
          ),
          "nd-spoof": e(
            ALL_NODES,
            x.mac,
            ETH.ip6,
            frame.na(X6, x.mac, Y6, m("nd-spoof")),
          ),
          "dhcp6-server": e(
            y.mac,
            x.mac,
            ETH.ip6,
            frame.udp6(XLL, YLL, 547, 546, m("dhcp6-server")),
          ),
          "ip4-none": e(
            y.mac,
            x.mac,
            ETH.ip4,
            frame.udp4(
              "198.51.100.50",
              "198.51.100.51",
              4000,
              4001,
              m("ip4-none"),
            ),
          ),
          "arp-none": e(
            BCAST,
            x.mac,
            ETH.arp,
            frame.arp(
              1,
              x.mac,
              "198.51.100.50",
              ZERO,
              "198.51.100.51",
              m("arp-none"),
            ),
          ),
          "vlan": frame.vlan(
            y.mac,
            x.mac,
            5,
            ETH.ip6,
            frame.udp6(X6, Y6, 4000, 4001, m("vlan")),
          ),
        };
        const fromX4 = {
          "legit4-udp4": e(
            y4.mac,
            x4.mac,
            ETH.ip4,
            frame.udp4(
              "198.51.100.10",
              "198.51.100.11",
              4000,
              4001,
              m("legit4-udp4"),
            ),
          ),
          "legit4-arp": e(
            BCAST,
            x4.mac,
            ETH.arp,
            frame.arp(
              1,
              x4.mac,
              "198.51.100.10",
              ZERO,
              "198.51.100.11",
              m("legit4-arp"),
            ),
          ),
          "legit4-dhcp4-client": e(
            BCAST,
            x4.mac,
            ETH.ip4,
            frame.udp4(
              "0.0.0.0",
              "255.255.255.255",
              68,
              67,
              m("legit4-dhcp4-client"),
            ),
          ),
          "legit4-udp6": e(
            y4.mac,
            x4.mac,
            ETH.ip6,
            frame.udp6(X46, Y46, 4000, 4001, m("legit4-udp6")),
          ),
          "arp-spoof-ip": e(
            BCAST,
            x4.mac,
            ETH.arp,
            frame.arp(
              2,
              x4.mac,
              "198.51.100.11",
              ZERO,
              "198.51.100.11",
              m("arp-spoof-ip"),
            ),
          ),
          "arp-spoof-mac": e(
            BCAST,
            x4.mac,
            ETH.arp,
            frame.arp(
              1,
              SPOOF,
              "198.51.100.10",
              ZERO,
              "198.51.100.11",
              m("arp-spoof-mac"),
            ),
          ),
          "ip4-spoof": e(
            y4.mac,
            x4.mac,
            ETH.ip4,
            frame.udp4(
              "198.51.100.99",
              "198.51.100.11",
              4000,
              4001,
              m("ip4-spoof"),
            ),
          ),
          "dhcp4-server": e(
            BCAST,
            x4.mac,
            ETH.ip4,
            frame.udp4(
              "198.51.100.10",
              "255.255.255.255",
              67,
              68,
              m("dhcp4-server"),
            ),
          ),
        };
        const fromZ = {
          "fail-closed": e(
            y.mac,
            z.mac,
            ETH.ip6,
            frame.udp6(
              eui64(n6.prefix, z.mac),
              Y6,
              4000,
              4001,
              m("fail-closed"),
            ),
          ),
        };

        const before = await nftTable(h1.ns);
        const capY = await capture(vms, y), capY4 = await capture(vms, y4);
        const N = 3;
        await Promise.all([
          sendFrames(x, Object.values(fromX), { repeat: N }),
          sendFrames(x4, Object.values(fromX4), { repeat: N }),
          sendFrames(z, Object.values(fromZ), { repeat: N }),
        ]);
        await new Promise((r) => setTimeout(r, 300));
        const gotY = tally(await capY.stop()),
          gotY4 = tally(await capY4.stop());
        const after = await nftTable(h1.ns);

        assert.deepEqual(
          new Map([...gotY].filter(([k]) => k in fromX || k in fromZ)),
          new Map([["legit-udp6", N], ["legit-na", N], [
            "legit-dhcp6-client",
            N,
          ]]),
          "y received exactly the legitimate frames of x",
        );
        assert.deepEqual(
          new Map([...gotY4].filter(([k]) => k in fromX4)),
          new Map([
            ["legit4-udp4", N],
            ["legit4-arp", N],
            ["legit4-dhcp4-client", N],
            ["legit4-udp6", N],
          ]),
          "y4 received exactly the legitimate frames of x4",
        );
        const delta = (port: string, comment: string) =>
          counted(after, nicChain(port), comment) -
          counted(before, nicChain(port), comment);
        const dropped: [string, string, number][] = [
          [x.port, "mac-spoof", N],
          [x.port, "ip6-spoof", N],
          [x.port, "ra", N],
          [x.port, "nd-spoof", N],
          [x.port, "dhcp6-server", N],
          [x.port, "ip4-none", 2 * N],
          [x.port, "ethertype", N],
          [x4.port, "arp-spoof", 2 * N],
          [x4.port, "ip4-spoof", N],
          [x4.port, "dhcp4-server", N],
        ];
        for (const [port, comment, n] of dropped) {
          assert.ok(
            delta(port, comment) >= n,
            `${comment}: ${delta(port, comment)} < ${n}`,
          );
        }
        assert.ok(
          counted(after, "from-ports", "fail-closed") -
              counted(before, "from-ports", "fail-closed") >= N,
          "fail-closed",
        );
        // The rogue RA gave y no address.
        assert.ok(
          (await globalAddrs(y)).every((a) =>
            !a.startsWith(ROGUE.split("::")[0] + ":")
          ),
          "rogue prefix configured on y",
        );
        // The spoofed MAC was not learned on x's port (rules run before learning).
        const { stdout } = await run("bridge", [
          "-n",
          h1.ns,
          "fdb",
          "show",
          "br",
          "ucb201",
        ]);
        assert.ok(
          !stdout.includes(SPOOF),
          `bridge learned the spoofed MAC: ${stdout}`,
        );
        await run("ip", ["-n", h1.ns, "link", "del", z.port]);
      },
    );

    await t.step(
      "re-sync and a new driver (worker restart) keep rules and counters; a spoofer never gets through",
      async () => {
        const radvd = Number(
          await Deno.readTextFile(`${dirs.get("h1")}/net/radvd.pid`),
        );
        const before = await nftTable(h1.ns);
        const capY = await capture(vms, y);
        const spoofer = sendFrames(x, [
          e(
            y.mac,
            SPOOF,
            ETH.ip6,
            frame.udp6(X6, Y6, 4000, 4001, m("cont-mac")),
          ),
          e(
            y.mac,
            x.mac,
            ETH.ip6,
            frame.udp6(eui64(n6.prefix, SPOOF), Y6, 4000, 4001, m("cont-ip6")),
          ),
          e(
            y.mac,
            x.mac,
            ETH.ip6,
            frame.udp6(X6, Y6, 4000, 4001, m("cont-legit")),
          ),
        ], { repeat: 500, gapMs: 2 });
        await new Promise((r) => setTimeout(r, 100));
        const none = { added: [], removed: [], changed: [] };
        let t0 = performance.now();
        assert.deepEqual(await d.sync(state), none);
        console.log(
          `re-sync, nothing to do: ${(performance.now() - t0).toFixed(0)} ms`,
        );
        assert.deepEqual(await driver("h1", false).sync(state), none);
        const mid = await nftTable(h1.ns);
        assert.deepEqual(handles(mid), handles(before), "rule handles changed");
        for (const c of before!.chains.values()) {
          for (const [i, r] of c.rules.entries()) {
            assert.ok(
              mid!.chains.get(c.name)!.rules[i].packets >= r.packets,
              `counter of ${c.name} reset`,
            );
          }
        }
        assert.ok(
          counted(mid, nicChain(x.port), "mac-spoof") >
            counted(before, nicChain(x.port), "mac-spoof"),
          "spoofer was not counted",
        );
        // A changed port is rewritten in one transaction, twice, while the spoofer sends.
        const moved = {
          ...state,
          ports: state.ports.map((p) =>
            p.name === x.port ? { ...p, ipv6: eui64(n6.prefix, mac(0x77)) } : p
          ),
        };
        t0 = performance.now();
        assert.deepEqual(await d.sync(moved), {
          ...none,
          changed: [nicChain(x.port)],
        });
        console.log(
          `re-sync, one port's rules changed: ${
            (performance.now() - t0).toFixed(0)
          } ms`,
        );
        assert.deepEqual(await d.sync(state), {
          ...none,
          changed: [nicChain(x.port)],
        });
        await spoofer;
        await new Promise((r) => setTimeout(r, 100));
        const got = tally(await capY.stop());
        assert.equal(
          got.get("cont-mac"),
          undefined,
          "a spoofed MAC got through",
        );
        assert.equal(
          got.get("cont-ip6"),
          undefined,
          "a spoofed IPv6 source got through",
        );
        assert.ok(
          (got.get("cont-legit") ?? 0) > 0,
          "legit traffic did not pass",
        );
        const after = await nftTable(h1.ns);
        assert.deepEqual(
          handles(after)[nicChain(y.port)],
          handles(before)[nicChain(y.port)],
        );
        assert.deepEqual(
          handles(after)["from-ports"],
          handles(before)["from-ports"],
        );
        assert.equal(
          Number(await Deno.readTextFile(`${dirs.get("h1")}/net/radvd.pid`)),
          radvd,
          "radvd restarted",
        );
      },
    );

    await t.step(
      "a public network: the admin's bridge, same protection",
      async () => {
        const pub: NetworkSpec = {
          id: "pub",
          kind: "public",
          prefix: prefix(3),
          bridge: "pubbr0",
          ra: false,
          dhcp: { v6: false, v4: false },
        };
        // A port name with a dot (sysctl keys need slashes for it).
        const p = await vms.create({
          name: "p",
          hostNs: h1.ns,
          port: "veth.p",
          mac: mac(0x21),
        });
        const q = await vm("q", 0x22);
        const withPub: HostNetState = {
          ...state,
          networks: [...state.networks, pub],
          ports: [...state.ports, portOf(p, pub), portOf(q, pub)],
        };
        // Its bridge missing: its ports are left out, the others synced.
        const without = await d.sync(withPub);
        assert.deepEqual(
          without.skipped?.map((x) => x.port).sort(),
          [p.port, q.port].sort(),
        );
        assert.match(
          without.skipped![0].reason,
          /bridge pubbr0 does not exist/,
        );
        assert.deepEqual(without.added, []);
        assert.equal((await links(h1.ns)).get(p.port)?.master, undefined);
        await run("ip", [
          "-n",
          h1.ns,
          "link",
          "add",
          "pubbr0",
          "type",
          "bridge",
        ]);
        await run("ip", ["-n", h1.ns, "link", "set", "pubbr0", "up"]);
        const r = await d.sync(withPub);
        assert.deepEqual(
          new Set(r.added),
          new Set([nicChain(p.port), nicChain(q.port)]),
        );
        assert.equal((await links(h1.ns)).get(p.port)?.master, "pubbr0");
        // Reserved link-local frames teach the admin's bridge nothing either.
        assert.equal(
          (await links(h1.ns)).get("pubbr0")?.linkinfo?.info_data
            ?.no_linklocal_learn,
          1,
        );
        const P6 = eui64(pub.prefix, p.mac), Q6 = eui64(pub.prefix, q.mac);
        const before = await nftTable(h1.ns);
        const cap = await capture(vms, q);
        await sendFrames(p, [
          e(
            q.mac,
            p.mac,
            ETH.ip6,
            frame.udp6(P6, Q6, 4000, 4001, m("pub-legit")),
          ),
          e(
            q.mac,
            p.mac,
            ETH.ip6,
            frame.udp6(Y6, Q6, 4000, 4001, m("pub-ip6-spoof")),
          ),
        ], { repeat: 3 });
        await new Promise((r) => setTimeout(r, 200));
        const got = tally(await cap.stop());
        assert.equal(got.get("pub-legit"), 3);
        assert.equal(got.get("pub-ip6-spoof"), undefined);
        const after = await nftTable(h1.ns);
        assert.ok(
          counted(after, nicChain(p.port), "ip6-spoof") -
              counted(before, nicChain(p.port), "ip6-spoof") >= 3,
        );
        // Leaving: ports go, the admin's bridge stays.
        const r2 = await d.sync(state);
        assert.deepEqual(
          new Set(r2.removed),
          new Set([p.port, q.port, nicChain(p.port), nicChain(q.port)]),
        );
        l = await links(h1.ns);
        assert.ok(l.has("pubbr0"));
        assert.equal(l.get(p.port)?.master, undefined);
      },
    );

    await t.step(
      "removing ports and networks removes their bridge, rules and radvd; teardown leaves nothing",
      async () => {
        const dir = `${dirs.get("h1")}/net`;
        // n4's ports go (n4 itself stays in the state: no port, no bridge).
        const r1 = await d.sync({
          ...state,
          ports: state.ports.filter((p) => p.network === n6.id),
        });
        assert.deepEqual(
          new Set(r1.removed),
          new Set([
            "ucb202",
            x4.port,
            y4.port,
            nicChain(x4.port),
            nicChain(y4.port),
          ]),
        );
        l = await links(h1.ns);
        assert.equal(l.has("ucb202"), false);
        assert.equal(
          l.get(x4.port)?.master,
          undefined,
          "a VM's veth is only detached",
        );
        let tb = await nftTable(h1.ns);
        assert.equal(tb?.chains.has(nicChain(x4.port)), false);
        assert.equal(tb?.ports.has(x4.port), false);
        assert.ok(tb?.ports.has(x.port));
        assert.ok(
          // radvd and its privilege-separation child
          (await daemonsIn([dir], /radvd$/)).length >= 1,
          "radvd still serves n6",
        );

        // The last ports of n6 go: its bridge, the tap, radvd and its files.
        const r2 = await d.sync({ networks: [], ports: [], peers: {} });
        assert.deepEqual(
          new Set(r2.removed),
          new Set([
            "ucb201",
            "radvd",
            x.port,
            y.port,
            tapPort.name,
            nicChain(x.port),
            nicChain(y.port),
            nicChain(tapPort.name),
          ]),
        );
        l = await links(h1.ns);
        assert.equal(l.has("ucb201"), false);
        assert.equal(l.has(tapPort.name), false, "our tap is deleted");
        assert.deepEqual(await daemonsIn([dir], /radvd$/), []);
        assert.deepEqual([...Deno.readDirSync(dir)].map((f) => f.name), []);
        tb = await nftTable(h1.ns);
        assert.deepEqual([...tb!.chains.keys()], ["from-ports", "dhcp-local"]);
        assert.equal(tb!.ports.size, 0);

        // Teardown: no table, no device of ours.
        await d.sync(state);
        await d.teardown();
        assert.equal(await nftTable(h1.ns), null);
        l = await links(h1.ns);
        assert.deepEqual(
          [...l.values()].filter((k) => k.ifalias === "ucloud-net").map((k) =>
            k.ifname
          ),
          [],
        );
        assert.deepEqual(
          [...l.values()].filter((k) => k.master).map((k) => k.ifname),
          [],
        );
        assert.deepEqual(await daemonsIn([dir], /radvd$/), []);
      },
    );
  });
});
