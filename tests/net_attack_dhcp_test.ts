/**
 * Tenant isolation against DHCP attacks (issue 17, holes 6 and 9): a VM
 * namespace plays a rogue DHCP server from another source port, and sends
 * DHCP client messages in a neighbour's name (its hardware address in
 * `chaddr`) to the host's real dnsmasq. Each attack must fail (not
 * received, the neighbour still gets its lease, the dropping rule counted
 * it) while the attacker's own DHCP still works.
 */
import assert from "node:assert/strict";
import { eui64, linkLocal } from "../core/netaddr.ts";
import { attack } from "./helpers/attack_frames.ts";
import { portOf, privateNet, withAttackHost } from "./helpers/attack_env.ts";
import { ETH, frame } from "./helpers/frames.ts";
import { dhcp4Offers } from "./helpers/vm_dhcp.ts";
import { marker as m, sendFrames } from "./helpers/vm_wire.ts";

const e = frame.ether;

Deno.test("NetDriver attack: a VM never sends to the DHCP client ports 68 and 546, from any source port", async () => {
  await withAttackHost("ucatk6", async (env) => {
    const n6 = privateNet("n6", 0x306, env.prefix(6));
    const n4 = privateNet("n4", 0x307, env.prefix(7), {
      ipv4: "198.51.100.0/24",
    });
    const x = await env.vm("x", 0x61), y = await env.vm("y", 0x62);
    const x4 = await env.vm("x4", 0x63, { ipv4: "198.51.100.10/24" });
    const y4 = await env.vm("y4", 0x64, { ipv4: "198.51.100.11/24" });
    await env.sync([n6, n4], [
      portOf(x, n6),
      portOf(y, n6),
      portOf(x4, n4, "198.51.100.10"),
      portOf(y4, n4, "198.51.100.11"),
    ]);
    const XLL = linkLocal(x.mac), YLL = linkLocal(y.mac);
    const X6 = eui64(n6.prefix, x.mac), Y6 = eui64(n6.prefix, y.mac);
    const d6 = await env.counted(x.port, "dhcp6-server");
    const d4 = await env.counted(x4.port, "dhcp4-server");

    const [atY] = await env.exchange(x, [
      e(y.mac, x.mac, ETH.ip6, frame.udp6(XLL, YLL, 5000, 546, m("v6-5000"))),
      e(
        "33:33:00:00:00:01",
        x.mac,
        ETH.ip6,
        frame.udp6(XLL, "ff02::1", 5000, 546, m("v6-5000-all")),
      ),
      e(y.mac, x.mac, ETH.ip6, frame.udp6(XLL, YLL, 547, 546, m("v6-547"))),
      e(y.mac, x.mac, ETH.ip6, frame.udp6(X6, Y6, 5000, 5001, m("legit6"))),
      e(
        "33:33:00:01:00:02",
        x.mac,
        ETH.ip6,
        frame.udp6(XLL, "ff02::1:2", 546, 547, m("legit6-client")),
      ),
    ], [y]);
    assert.deepEqual(
      new Map(atY),
      new Map([["legit6", 3], ["legit6-client", 3]]),
      "y received exactly x's legitimate frames",
    );
    const [atY4] = await env.exchange(x4, [
      attack.dhcp4Offer(
        x4.mac,
        "198.51.100.10",
        5000,
        y4.mac,
        "198.51.100.99",
        m("offer-5000"),
      ),
      attack.dhcp4Offer(
        x4.mac,
        "198.51.100.10",
        67,
        y4.mac,
        "198.51.100.99",
        m("offer-67"),
      ),
      e(
        y4.mac,
        x4.mac,
        ETH.ip4,
        frame.udp4("198.51.100.10", "198.51.100.11", 5000, 5001, m("legit4")),
      ),
      attack.dhcp4Client(x4.mac, x4.mac, 1, [], m("legit4-discover")),
    ], [y4]);
    assert.deepEqual(
      new Map(atY4),
      new Map([["legit4", 3], ["legit4-discover", 3]]),
      "y4 received exactly x4's legitimate frames",
    );
    assert.ok((await env.counted(x.port, "dhcp6-server")) - d6 >= 9);
    assert.ok((await env.counted(x4.port, "dhcp4-server")) - d4 >= 6);
  });
});

Deno.test("NetDriver attack: DHCPv4 client messages in a neighbour's name (DHCPDECLINE, DISCOVER with its chaddr) are dropped; the neighbour keeps its address", async () => {
  await withAttackHost("ucatk9", async (env) => {
    const net = privateNet("n4", 0x309, env.prefix(9), {
      ipv4: "198.51.100.0/24",
      dhcp: { v4: true, v6: false },
    });
    const x = await env.vm("x", 0x91), y = await env.vm("y", 0x92);
    await env.sync([net], [
      portOf(x, net, "198.51.100.2"),
      portOf(y, net, "198.51.100.3"),
    ]);
    const ips = async (vm: typeof x, chaddr = vm.mac) =>
      (await dhcp4Offers(vm, { chaddr, waitMs: 1000 })).map((o) => o.yiaddr);
    assert.deepEqual(await ips(y), ["198.51.100.3", "198.51.100.3"]);
    const c0 = await env.counted(x.port, "dhcp4-chaddr");

    // x declines y's address in y's name: dnsmasq would take it off y.
    // ... also with y's chaddr in a second fragment (the first one ends
    // 24 bytes into the BOOTP header, before chaddr).
    const decline = attack.dhcp4Decline(
      x.mac,
      y.mac,
      "198.51.100.3",
      "198.51.100.1",
      m("d"),
    );
    await sendFrames(x, [decline, ...attack.fragment4(decline, 32)], {
      repeat: 3,
    });
    assert.deepEqual(
      await ips(y),
      ["198.51.100.3", "198.51.100.3"],
      "y lost its address",
    );
    assert.deepEqual(await ips(x, y.mac), [], "x got an offer in y's name");
    // x's own DHCP still works.
    assert.deepEqual(await ips(x), ["198.51.100.2", "198.51.100.2"]);
    assert.ok(
      (await env.counted(x.port, "dhcp4-chaddr")) - c0 >= 3 + 3 + 2,
      "not counted",
    );
  });
});
