/**
 * The NoCloud seed at `/nocloud/`, which cloud-init reads when the SMBIOS
 * serial says `ds=nocloud-net;s=http://[fd00:ec2::254]/nocloud/`:
 * `meta-data` (instance-id, local-hostname, public-keys), `user-data`
 * (empty when none: the seed needs the file), `vendor-data` (empty) and
 * `network-config` (version 2: each NIC of the VM on this host matched by
 * its MAC, IPv6 by SLAAC, the static IPv4 address where it has one).
 * Values are written as YAML double-quoted scalars (JSON strings are), so
 * no value can break the document.
 *
 * @example
 * ```ts
 * app.route("/nocloud", nocloudTree());
 * ```
 */
import { Hono } from "hono";
import { parsePrefix4 } from "../../core/netaddr.ts";
import type { VmMetadata } from "../../resources/vms/metadata.ts";
import type { MetadataEnv } from "./env.ts";
import type { MetadataPort } from "./identity.ts";

const q = (s: string) => JSON.stringify(s);
const yaml = { "content-type": "text/yaml; charset=utf-8" };

/** The tree under `/nocloud` (see the module comment). */
export function nocloudTree(): Hono<MetadataEnv> {
  const t = new Hono<MetadataEnv>({ strict: false });
  t.get(
    "/",
    (c) =>
      c.text(["meta-data", "network-config", "user-data", "vendor-data"].join(
        "\n",
      )),
  );
  t.get("/meta-data", (c) => c.body(metaData(c.get("meta")), 200, yaml));
  t.get("/user-data", (c) =>
    c.body(c.get("meta").userData ?? "", 200, {
      "content-type": "application/octet-stream",
    }));
  t.get("/vendor-data", (c) => c.body("", 200, yaml));
  t.get(
    "/network-config",
    (c) => c.body(networkConfig(c.get("who").nics), 200, yaml),
  );
  return t;
}

/** NoCloud's meta-data document. */
export function metaData(m: VmMetadata): string {
  return [
    `instance-id: ${q(m.instanceId)}`,
    `local-hostname: ${q(m.hostname)}`,
    ...(m.keys.length
      ? ["public-keys:", ...m.keys.map((k) => `  - ${q(k)}`)]
      : ["public-keys: []"]),
    "",
  ].join("\n");
}

/** A network config (version 2) for the VM's NICs on this host. */
export function networkConfig(nics: MetadataPort[]): string {
  const out = ["version: 2", "ethernets:"];
  for (const n of nics) {
    out.push(
      `  nic${n.slot}:`,
      "    match:",
      `      macaddress: ${q(n.mac)}`,
      "    dhcp4: false",
      "    dhcp6: false",
      "    accept-ra: true",
    );
    if (n.ipv4 && n.subnet) {
      const len = parsePrefix4(n.subnet).length;
      out.push(`    addresses: [${q(`${n.ipv4}/${len}`)}]`);
    }
  }
  return out.join("\n") + "\n";
}
