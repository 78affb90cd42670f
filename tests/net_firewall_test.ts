/**
 * The host network driver's port firewall on real kernel networking (one
 * host namespace, VMs as namespaces): spoofed frames, crafted byte by byte,
 * must be counted by the rule named for their case AND never reach the
 * peer VM, while the same traffic with the right addresses does; rules
 * survive re-syncs; removal and teardown leave nothing. The steps' bodies
 * are in helpers/firewall_spoof_step.ts and helpers/firewall_steps.ts.
 */
import assert from "node:assert/strict";
import { eui64, linkLocal } from "../core/netaddr.ts";
import { tapName } from "../drivers/net/names.ts";
import type { HostNetState, PortSpec } from "../drivers/net/types.ts";
import { frame } from "./helpers/frames.ts";
import { marker } from "./helpers/vm_wire.ts";
import { waitAddress } from "./helpers/vmns.ts";
import {
  type FirewallCtx,
  links,
  mac,
  portOf,
  privateNet,
  withHosts,
} from "./helpers/net_driver_fixtures.ts";
import { spoofingDropped } from "./helpers/firewall_spoof_step.ts";
import {
  publicNetwork,
  removalLeavesNothing,
  resyncKeepsRules,
} from "./helpers/firewall_steps.ts";

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
        port: tapName(mac(n)),
        mac: mac(n),
        ipv4,
      });
    const x = await vm("x", 0x11), y = await vm("y", 0x12);
    const x4 = await vm("x4", 0x13, "198.51.100.10/24");
    const y4 = await vm("y4", 0x14, "198.51.100.11/24");
    // A port the driver must create itself (a tap, as for qemu).
    const tapPort: PortSpec = {
      name: tapName(mac(0x16)),
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
    const l = await links(h1.ns);
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
    const c: FirewallCtx = {
      net,
      driver,
      h1,
      vms,
      dirs,
      d,
      state,
      prefix,
      n6,
      n4,
      vm,
      x,
      y,
      x4,
      y4,
      tapPort,
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
    };

    await t.step(
      "spoofing is dropped and counted; legitimate traffic passes",
      () => spoofingDropped(c),
    );

    await t.step(
      "re-sync and a new driver (worker restart) keep rules and counters; a spoofer never gets through",
      () => resyncKeepsRules(c),
    );

    await t.step(
      "a public network: the admin's bridge, same protection",
      () => publicNetwork(c),
    );

    await t.step(
      "removing ports and networks removes their bridge, rules and radvd; teardown leaves nothing",
      () => removalLeavesNothing(c),
    );
  });
});
