/**
 * The metadata service end to end on namespaces: a host namespace runs the
 * network driver and the metadata service as the worker does (HostNet
 * telling the service after each sync, tests/helpers/metadata_host.ts),
 * from VM and network documents in a real etcd; VMs are namespaces on the
 * ports of those VMs (tests/helpers/metadata_vms.ts). Each VM fetches its
 * own key with busybox wget from fe80::a9fe:a9fe, fd00:ec2::254 and
 * 169.254.169.254, and never the other VM's, also not with the other VM's
 * address as its source.
 */
import assert from "node:assert/strict";
import { METADATA } from "../drivers/net/host_input.ts";
import { nsRun } from "./helpers/vmns.ts";
import { noSanitize } from "./helpers/api.ts";
import {
  type MetaVm,
  vmReady,
  wget,
  withMetadataVms,
} from "./helpers/metadata_vms.ts";

const [LL, GLOBAL] = METADATA.ipv6;
/** The three addresses as a VM writes them in a URL. */
const BASES = {
  "link-local": `http://[${LL}%eth0]`,
  "fd00:ec2::254": `http://[${GLOBAL}]`,
  "169.254.169.254": `http://${METADATA.ipv4}`,
};
const KEY = "/latest/meta-data/public-keys/0/openssh-key";

Deno.test({
  name:
    "metadata e2e: VM namespaces on one host each fetch their own key from fe80::a9fe:a9fe, fd00:ec2::254 and 169.254.169.254 with busybox wget, never the other's",
  ...noSanitize,
  fn: () =>
    withMetadataVms(async (env) => {
      const x = await env.vm("x", ["kx"], "#cloud-config\nx: 1\n");
      const y = await env.vm("y", ["ky"]);
      await env.startHost();
      await vmReady(x);
      await vmReady(y);
      const fetchAll = async (vm: MetaVm) => {
        const out: Record<string, string | null> = {};
        for (const [name, base] of Object.entries(BASES)) {
          out[name] = await wget(vm, `${base}${KEY}`);
        }
        return out;
      };
      const own = (vm: MetaVm, name: string) =>
        Object.fromEntries(
          Object.keys(BASES).map((b) => [b, `${vm.keys[name]}\n`]),
        );
      assert.deepEqual(await fetchAll(x), own(x, "kx"));
      assert.deepEqual(await fetchAll(y), own(y, "ky"));
      assert.equal(
        await wget(x, `${BASES["fd00:ec2::254"]}/latest/meta-data/instance-id`),
        x.doc.id,
      );
      assert.equal(
        await wget(y, `${BASES["169.254.169.254"]}/latest/user-data`),
        null,
        "y has no user data (404)",
      );
      assert.equal(
        await wget(x, `${BASES["link-local"]}/openstack/latest/user_data`),
        "#cloud-config\nx: 1\n",
      );

      // y with x's addresses as its own: the port firewall drops what y
      // sends from them, so the service never sees y as x.
      const xv6 = x.doc.nics[0].ipv6, xv4 = x.doc.nics[0].ipv4!;
      await nsRun(y.ns.ns, "ip", [
        "addr",
        "add",
        `${xv6}/128`,
        "dev",
        "eth0",
        "nodad",
      ]);
      await nsRun(y.ns.ns, "ip", ["addr", "add", `${xv4}/32`, "dev", "eth0"]);
      const before = await env.drops();
      const spoofed = async (source: string, base: string) => {
        try {
          const { stdout } = await nsRun(y.ns.ns, "curl", [
            "-sS",
            "--noproxy",
            "*",
            "-m",
            "3",
            "--interface",
            source,
            `${base}${KEY}`,
          ]);
          return stdout;
        } catch {
          return null;
        }
      };
      assert.equal(await spoofed(xv6, BASES["fd00:ec2::254"]), null);
      assert.equal(await spoofed(xv4, BASES["169.254.169.254"]), null);
      // The port firewall counted the drops.
      const after = await env.drops();
      assert.ok(
        after.get(y.ns.port)! - before.get(y.ns.port)! >= 2,
        `drops of y's port: ${before.get(y.ns.port)} -> ${
          after.get(y.ns.port)
        }`,
      );
      // Without them, y's own addresses work as before.
      await nsRun(y.ns.ns, "ip", ["addr", "del", `${xv6}/128`, "dev", "eth0"]);
      await nsRun(y.ns.ns, "ip", ["addr", "del", `${xv4}/32`, "dev", "eth0"]);
      assert.deepEqual(await fetchAll(y), own(y, "ky"));
    }),
});
