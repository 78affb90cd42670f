/**
 * The OpenStack metadata tree at `/openstack/<version>/` (`latest`,
 * `2012-08-10`, `2018-08-27`: aliases): `meta_data.json` (uuid, name,
 * hostname, public_keys by name, keys, launch_index), `user_data` (404
 * when none), `vendor_data.json` (`{}`) and `network_data.json` (a link per
 * NIC of the VM on this host, an `ipv6_slaac` network on each, and the
 * static IPv4 address where the network has legacy IPv4).
 *
 * @example
 * ```ts
 * app.route("/openstack", openstackTree());
 * ```
 */
import { Hono } from "hono";
import { parsePrefix4 } from "../../core/netaddr.ts";
import type { MetadataEnv } from "./env.ts";
import type { MetadataPort } from "./identity.ts";

/** The versions served besides `latest`. */
export const OPENSTACK_VERSIONS = ["2012-08-10", "2018-08-27"] as const;

const VERSION_RE = new RegExp(
  `^(latest|${OPENSTACK_VERSIONS.join("|")})$`,
);

/** The tree under `/openstack` (see the module comment). */
export function openstackTree(): Hono<MetadataEnv> {
  const t = new Hono<MetadataEnv>({ strict: false });
  t.get("/", (c) => c.text([...OPENSTACK_VERSIONS, "latest"].join("\n")));
  const v = new Hono<MetadataEnv>({ strict: false });
  v.get("/", (c) =>
    c.text([
      "meta_data.json",
      "network_data.json",
      ...(c.get("meta").userData === undefined ? [] : ["user_data"]),
      "vendor_data.json",
    ].join("\n")));
  v.get("/meta_data.json", (c) => {
    const m = c.get("meta");
    return c.json({
      uuid: m.instanceId,
      name: m.hostname,
      hostname: m.hostname,
      public_keys: Object.fromEntries(
        m.keys.map((k, i) => [m.keyNames[i], k]),
      ),
      keys: m.keys.map((k, i) => ({
        name: m.keyNames[i],
        type: "ssh",
        data: k,
      })),
      launch_index: 0,
    });
  });
  v.get("/user_data", (c) => {
    const u = c.get("meta").userData;
    if (u === undefined) return c.notFound();
    return c.body(u, 200, { "content-type": "application/octet-stream" });
  });
  v.get("/vendor_data.json", (c) => c.json({}));
  v.get("/network_data.json", (c) => c.json(networkData(c.get("who").nics)));
  t.use("/:version/*", async (c, next) => {
    if (!VERSION_RE.test(c.req.param("version"))) return c.notFound();
    await next();
  });
  t.route("/:version", v);
  return t;
}

/** OpenStack's network_data.json for the VM's NICs on this host. */
export function networkData(nics: MetadataPort[]) {
  const links = nics.map((n) => ({
    id: `nic${n.slot}`,
    type: "phy",
    ethernet_mac_address: n.mac,
    mtu: null,
  }));
  const networks = nics.flatMap((n) => [
    {
      id: `nic${n.slot}-ipv6`,
      type: "ipv6_slaac",
      link: `nic${n.slot}`,
      network_id: n.network,
    },
    ...(n.ipv4 && n.subnet
      ? [{
        id: `nic${n.slot}-ipv4`,
        type: "ipv4",
        link: `nic${n.slot}`,
        network_id: n.network,
        ip_address: n.ipv4,
        netmask: netmask(n.subnet),
        routes: [],
      }]
      : []),
  ]);
  return { links, networks, services: [] };
}

function netmask(subnet: string): string {
  const len = parsePrefix4(subnet).length;
  const m = (0xffffffff << (32 - len)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 0xff).join(".");
}
