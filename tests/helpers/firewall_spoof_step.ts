/**
 * The first step of the port firewall test (net_firewall_test.ts): every
 * spoofing case is dropped and counted by the rule named for it, never
 * received by the peer VM, while legitimate traffic passes.
 */
import assert from "node:assert/strict";
import { eui64 } from "../../core/netaddr.ts";
import { run } from "../../drivers/runner.ts";
import { nicChain } from "../../drivers/net/names.ts";
import { nftTable } from "./net_hosts.ts";
import { ETH, frame } from "./frames.ts";
import { capture, sendFrames } from "./vm_wire.ts";
import { globalAddrs } from "./vmns.ts";

import { counted, type FirewallCtx, tally } from "./net_driver_fixtures.ts";

/** Step: spoofing is dropped and counted; legitimate traffic passes. */
export async function spoofingDropped(c: FirewallCtx): Promise<void> {
  const {
    h1,
    vms,
    n6,
    vm,
    x,
    y,
    x4,
    y4,
    X6,
    Y6,
    XLL,
    YLL,
    X46,
    Y46,
    SPOOF,
    BCAST,
    ALL_NODES,
    ZERO,
    ROGUE,
    m,
    e,
  } = c;
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
}
