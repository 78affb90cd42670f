/**
 * The metadata service stays on each host (drivers/net/nft_metadata.ts):
 * every host of a private network holds the same metadata addresses on
 * one segment (VXLAN), yet a VM resolves and reaches only its own host's,
 * and only with its own addresses.
 * Two hosts are namespaces on one underlay with the real driver; VMs are
 * namespaces.
 */
import assert from "node:assert/strict";
import { eui64, linkLocal } from "../core/netaddr.ts";
import { METADATA } from "../drivers/net/host_input.ts";
import { nicChain, tapName } from "../drivers/net/names.ts";
import { META_IN, META_OUT } from "../drivers/net/nft_metadata.ts";
import { run } from "../drivers/runner.ts";
import type { NftTable } from "../drivers/net/nft.ts";
import { counted as hostCounted, linkAddrs } from "./helpers/host_input.ts";
import { counted } from "./helpers/net_driver_fixtures.ts";
import { fetchLine, metadataListener, sniff } from "./helpers/metadata_net.ts";
import { nftTable, withNetHosts } from "./helpers/net_hosts.ts";
import { portOf, privateNet } from "./helpers/net_specs.ts";
import { ETH, frame } from "./helpers/frames.ts";
import { marker, sendFrames } from "./helpers/vm_wire.ts";
import { waitAddress } from "./helpers/vmns.ts";

const [LL, GLOBAL] = METADATA.ipv6;

/** Packets counted by the rules of `chain` (all of them). */
function drops(t: NftTable | null, chain: string): number {
  const c = t?.chains.get(chain);
  assert.ok(c, `no chain ${chain}`);
  return c.rules.reduce((n, r) => n + r.packets, 0);
}

Deno.test("NetDriver metadata locality: over VXLAN a VM resolves and reaches only its own host's metadata addresses; the other host drops and counts what reaches it", async () => {
  await withNetHosts(["h1", "h2"], async ({ net, vms, driver }) => {
    const h1 = net.host("h1"), h2 = net.host("h2");
    const n = privateNet("loc", 0x3c1, `fdc1:d00:${net.id}:c1::/64`, {
      ipv4: "198.51.100.0/24",
    });
    const vm = (name: string, host: string, last: number) =>
      vms.create({
        name,
        hostNs: net.host(host).ns,
        port: tapName(`02:c1:0d:00:3c:${last.toString(16).padStart(2, "0")}`),
        mac: `02:c1:0d:00:3c:${last.toString(16).padStart(2, "0")}`,
        ipv4: `198.51.100.${last}/24`,
      });
    const a = await vm("a", "h1", 10), b = await vm("b", "h2", 11);
    await driver("h1").sync({
      networks: [n],
      ports: [portOf(a, n, "198.51.100.10")],
      peers: {},
    });
    await driver("h2").sync({
      networks: [n],
      ports: [portOf(b, n, "198.51.100.11")],
      peers: {},
    });
    for (const v of [a, b]) {
      await waitAddress(v, eui64(n.prefix, v.mac));
      await run("ip", [
        "-n",
        v.ns,
        "route",
        "add",
        `${METADATA.ipv4}/32`,
        "dev",
        "eth0",
      ]);
    }
    const br = "ucb3c1";
    const mac1 = (await linkAddrs(h1.ns, br)).mac;
    const mac2 = (await linkAddrs(h2.ns, br)).mac;
    const stops = [
      await metadataListener(
        h1.ns,
        [`${LL}%${br}`, GLOBAL, METADATA.ipv4],
        "h1",
      ),
      await metadataListener(
        h2.ns,
        [`${LL}%${br}`, GLOBAL, METADATA.ipv4],
        "h2",
      ),
    ];
    try {
      const before = drops(await nftTable(h2.ns), META_IN);
      const seen = await sniff(vms, a);
      const answers: Record<string, string | null> = {};
      for (const round of [1, 2]) {
        // Forget the neighbours: every round resolves them again.
        await run("ip", ["-n", a.ns, "neigh", "flush", "dev", "eth0"]);
        for (const addr of [LL, GLOBAL, METADATA.ipv4]) {
          answers[`${round} ${addr}`] = await fetchLine(a, addr);
        }
      }
      const frames = await seen.stop();
      assert.deepEqual(
        Object.values(answers).map((l) => l?.split(" ")[0]),
        ["h1", "h1", "h1", "h1", "h1", "h1"],
        JSON.stringify(answers),
      );
      const kinds = new Set(frames.map((f) => f.kind));
      assert.deepEqual([...kinds].sort(), ["arp", "na", "tcp4", "tcp6"]);
      assert.deepEqual(
        [...new Set(frames.map((f) => f.mac))],
        [mac1],
        `answers from other MACs than h1's bridge (h2's: ${mac2})`,
      );
      // h2 heard a's neighbour solicitations and ARP requests: dropped.
      assert.ok(
        drops(await nftTable(h2.ns), META_IN) >= before + 4,
        "h2 counted no drops",
      );

      // A frame to h1's metadata address from a VM on h2 reaches h1 by
      // VXLAN (h1's bridge MAC): dropped at h1's input, counted.
      const in1 = drops(await nftTable(h1.ns), META_IN);
      const B6 = eui64(n.prefix, b.mac);
      await sendFrames(b, [
        frame.ether(
          mac1,
          b.mac,
          ETH.ip6,
          frame.udp6(B6, GLOBAL, 40000, 80, marker("vxlan")),
        ),
      ], { repeat: 5 });
      assert.ok(
        drops(await nftTable(h1.ns), META_IN) >= in1 + 5,
        "h1 counted no drops from the VXLAN device",
      );
      // What h1 sends from a metadata address never leaves by VXLAN: a
      // ping from fd00:ec2::254 to b (on h2) is dropped at h1's output.
      const out1 = drops(await nftTable(h1.ns), META_OUT);
      const ping = await run("ip", [
        "netns",
        "exec",
        h1.ns,
        "busybox",
        "ping",
        "-6",
        "-c",
        "2",
        "-W",
        "1",
        "-I",
        GLOBAL,
        B6,
      ]).then(() => "answered", () => "not answered");
      assert.equal(ping, "not answered");
      assert.ok(
        drops(await nftTable(h1.ns), META_OUT) >= out1 + 2,
        "h1 counted no drops at output",
      );
      assert.equal(
        await fetchLine(b, GLOBAL).then((l) => l?.split(" ")[0]),
        "h2",
      );
    } finally {
      for (const stop of stops) await stop();
    }
  });
});

Deno.test("NetDriver metadata: a second VM on the host spoofing the first VM's addresses reaches no listener; its port counts ip6-spoof and ip4-spoof", async () => {
  await withNetHosts(["h1"], async ({ net, vms, driver }) => {
    const h1 = net.host("h1");
    const n = privateNet("spf", 0x3d1, `fdc1:d00:${net.id}:d1::/64`, {
      ipv4: "198.51.100.0/24",
    });
    const vm = (name: string, last: number) =>
      vms.create({
        name,
        hostNs: h1.ns,
        port: tapName(`02:c1:0d:00:3d:${last.toString(16).padStart(2, "0")}`),
        mac: `02:c1:0d:00:3d:${last.toString(16).padStart(2, "0")}`,
        ipv4: `198.51.100.${last}/24`,
      });
    const x = await vm("x", 10), y = await vm("y", 11);
    await driver("h1").sync({
      networks: [n],
      ports: [portOf(x, n, "198.51.100.10"), portOf(y, n, "198.51.100.11")],
      peers: {},
    });
    const X6 = eui64(n.prefix, x.mac), XLL = linkLocal(x.mac);
    for (const v of [x, y]) {
      await waitAddress(v, eui64(n.prefix, v.mac));
      await run("ip", [
        "-n",
        v.ns,
        "route",
        "add",
        `${METADATA.ipv4}/32`,
        "dev",
        "eth0",
      ]);
    }
    // y takes x's addresses too (no DAD: x holds them).
    for (const a of [`${X6}/64`, `${XLL}/64`, "198.51.100.10/32"]) {
      await run("ip", [
        "-n",
        y.ns,
        "addr",
        "add",
        a,
        "dev",
        "eth0",
        ...(a.includes(":") ? ["nodad"] : []),
      ]);
    }
    const br = "ucb3d1";
    const stop = await metadataListener(h1.ns, [
      `${LL}%${br}`,
      GLOBAL,
      METADATA.ipv4,
    ]);
    try {
      // Both VMs reach it with their own addresses (y now has the
      // host's MACs in its neighbour cache: its spoofed packets go out).
      assert.equal(
        await fetchLine(y, GLOBAL, eui64(n.prefix, y.mac)),
        `${GLOBAL} ${eui64(n.prefix, y.mac)}`,
      );
      assert.equal(
        await fetchLine(y, LL, linkLocal(y.mac)),
        `${LL} ${linkLocal(y.mac)}`,
      );
      assert.equal(
        await fetchLine(y, METADATA.ipv4, "198.51.100.11"),
        `${METADATA.ipv4} 198.51.100.11`,
      );
      assert.equal(await fetchLine(x, GLOBAL), `${GLOBAL} ${X6}`);
      const chain = nicChain(y.port);
      const before = await nftTable(h1.ns);
      const reached = await hostCounted(h1.ns, "metadata");
      const spoofed = {
        ll: await fetchLine(y, LL, XLL),
        global: await fetchLine(y, GLOBAL, X6),
        ipv4: await fetchLine(y, METADATA.ipv4, "198.51.100.10"),
      };
      const after = await nftTable(h1.ns);
      assert.deepEqual(spoofed, { ll: null, global: null, ipv4: null });
      // Not one spoofed packet reached the host (a reply would have gone
      // to x anyway: the counter shows the firewall stopped them).
      assert.equal(await hostCounted(h1.ns, "metadata"), reached);
      assert.ok(
        counted(after, chain, "ip6-spoof") >=
          counted(before, chain, "ip6-spoof") + 2,
        "ip6-spoof not counted",
      );
      assert.ok(
        counted(after, chain, "ip4-spoof") >
          counted(before, chain, "ip4-spoof"),
        "ip4-spoof not counted",
      );
    } finally {
      await stop();
    }
  });
});
