/**
 * The metadata service answers VMs only (drivers/net/host_input.ts): a
 * machine on the underlay that routes the metadata addresses to a host
 * gets no answer, and the host counts what it drops. Hosts are namespaces
 * on one underlay with the real driver; the VM is a namespace.
 */
import assert from "node:assert/strict";
import { eui64 } from "../core/netaddr.ts";
import { METADATA } from "../drivers/net/host_input.ts";
import { tapName } from "../drivers/net/names.ts";
import { run } from "../drivers/runner.ts";
import { counted } from "./helpers/host_input.ts";
import { fetchLine, metadataListener } from "./helpers/metadata_net.ts";
import { withNetHosts } from "./helpers/net_hosts.ts";
import { portOf, privateNet } from "./helpers/net_specs.ts";
import { waitAddress } from "./helpers/vmns.ts";

const GLOBAL = METADATA.ipv6[1];

Deno.test("NetDriver metadata: a machine on the underlay routing fd00:ec2::254 to a host gets no answer from its listener, counted as metadata-off-vms; the host's VM still gets one", async () => {
  await withNetHosts(["h1", "h2"], async ({ net, vms, driver }) => {
    const h1 = net.host("h1"), h2 = net.host("h2");
    const n = privateNet("ul", 0x3d1, `fdc1:d00:${net.id}:d1::/64`);
    const x = await vms.create({
      name: "x",
      hostNs: h1.ns,
      port: tapName("02:c1:0d:00:3d:10"),
      mac: "02:c1:0d:00:3d:10",
    });
    await driver("h1").sync({
      networks: [n],
      ports: [portOf(x, n)],
      peers: {},
    });
    const ip6 = eui64(n.prefix, x.mac);
    await waitAddress(x, ip6);
    const stop = await metadataListener(h1.ns, [GLOBAL]);
    try {
      // h2 has no network: for it fd00:ec2::254 is just an address of h1.
      await run("ip", [
        ...["-n", h2.ns, "-6", "route", "add", `${GLOBAL}/128`],
        ...["via", h1.address, "dev", "eth0"],
      ]);
      const before = await counted(h1.ns, "metadata-off-vms");
      assert.equal(await fetchLine({ ns: h2.ns }, GLOBAL), null);
      assert.ok(
        await counted(h1.ns, "metadata-off-vms") > before,
        "nothing counted",
      );
      assert.equal(await fetchLine(x, GLOBAL), `${GLOBAL} ${ip6}`);
    } finally {
      await stop();
    }
  });
});
