/**
 * The host network driver on real kernel networking: hosts are network
 * namespaces on one IPv6 ULA underlay (tests/helpers/netns.ts), VMs are
 * namespaces whose eth0 is a veth to a port in a host namespace
 * (tests/helpers/vmns.ts). One private network spans hosts over real
 * bridges and VXLAN (multicast and unicast), with SLAAC from radvd, and
 * stays isolated from other networks. The port firewall is tested in
 * net_firewall_test.ts.
 */
import assert from "node:assert/strict";
import { eui64 } from "../core/netaddr.ts";
import { detectUnderlay } from "../drivers/net/underlay.ts";
import { nicChain, tapName } from "../drivers/net/names.ts";
import type { HostNetState } from "../drivers/net/types.ts";
import { globalAddrs, linkUp, ping, waitAddress } from "./helpers/vmns.ts";

import {
  fdbPeers,
  links,
  mac,
  portOf,
  privateNet,
  sysctl,
  withHosts,
} from "./helpers/net_driver_fixtures.ts";

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
        port: tapName(mac(n)),
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
      port: tapName(mac(6)),
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
