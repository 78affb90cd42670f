/**
 * Issue 12 end to end on the real system, as a user: the Debian image
 * (scripts/build_debian_image.sh) uploaded through the image API, two SSH
 * keys added through the API, a private network, and a VM from the image
 * on it with one of the keys and cloud-config user data, on a host
 * namespace whose worker runs qemu (TCG), host networking and the
 * metadata service (tests/helpers/debian_cloud.ts). The unmodified
 * cloud-init of the image finds the service from the SMBIOS serial
 * (NoCloudNet) and the test logs in with ssh over the IPv6 address the API
 * predicted, from a client namespace plugged into the network's bridge on
 * the host with a veth that is not a tap (tests/helpers/ssh_client.ts).
 * Not from the host's own namespace: drivers/net/host_input.ts accepts
 * from VMs only TCP to the metadata port, statelessly, so the VM's ssh
 * replies to the host would be dropped. The VM is deleted at the end and
 * nothing of it may be left: no qemu, tap, bridge or namespace.
 */
import assert from "node:assert/strict";
import { bridgeOf, tapName } from "../drivers/net/mod.ts";
import { NOCLOUD_SERIAL } from "../drivers/qemu/args.ts";
import { run } from "../drivers/runner.ts";
import { networkSpec } from "../workers/net.ts";
import { noSanitize } from "./helpers/api.ts";
import { qemuPids, waitFor } from "./helpers/cluster.ts";
import { HOST, withDebianCloud } from "./helpers/debian_cloud.ts";
import { ucloudLinks } from "./helpers/net_e2e.ts";

/**
 * A TCG boot of BIOS, extlinux, Debian's kernel, systemd and cloud-init's
 * four stages on a loaded 2-core machine.
 */
const BOOT_MS = 1_200_000;

const USER_DATA = [
  "#cloud-config",
  "write_files:",
  "  - path: /var/tmp/ucloud-user-data",
  '    content: "written by user data\\n"',
  "",
].join("\n");

/** The names of the network namespaces there are now. */
async function namespaces(): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout.split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
}

Deno.test({
  name:
    "a Debian VM created through the API with key k1 and user data: ssh over its predicted IPv6 address with k1 shows its name as hostname and the file the user data wrote, k2 is refused, cloud-init used NoCloudNet from the SMBIOS serial; delete leaves nothing",
  ...noSanitize,
  async fn() {
    const ours: string[] = [];
    await withDebianCloud(async (cloud) => {
      const k1 = await cloud.addKey("k1");
      const k2 = await cloud.addKey("k2");
      const start = Date.now();
      const created = await cloud.createVm({
        name: "deb-e2e",
        keys: ["k1"],
        userData: USER_DATA,
      });
      const vm = await cloud.waitRunning(created.id);
      ours.push(cloud.net.host(HOST).ns, cloud.client.ns);
      const runningMs = Date.now() - start;
      assert.equal(vm.status.host, HOST);
      const addr = vm.nics[0].ipv6;
      assert.equal(addr, created.nics[0].ipv6, "the address the API predicted");
      const [pid] = await qemuPids(`/vms/${vm.id}/`);
      const args = (await Deno.readTextFile(`/proc/${pid}/cmdline`))
        .split("\0");
      assert.ok(args.includes(`type=1,serial=${NOCLOUD_SERIAL}`), "serial");
      assert.ok(!args.includes("-kernel"), "boots from its own disk");

      const target = `debian@${addr}`;
      const login = await waitFor(
        `an ssh login to ${addr}`,
        () =>
          cloud.client.ssh(
            k1.privateFile,
            target,
            "hostname; cat /var/tmp/ucloud-user-data",
          ),
        BOOT_MS,
        2_000,
      );
      const sshMs = Date.now() - start;
      assert.equal(login.stdout, "deb-e2e\nwritten by user data\n");
      await assert.rejects(
        () => cloud.client.ssh(k2.privateFile, target, "true"),
        /Permission denied/,
      );
      const guest = await cloud.client.ssh(
        k1.privateFile,
        target,
        "cat /var/lib/cloud/instance/datasource ~/.ssh/authorized_keys; " +
          "ls /etc/ssh",
      );
      assert.match(
        guest.stdout,
        /^DataSourceNoCloudNet: .*\[seed=dmi,http:\/\/\[fd00:ec2::254\]\/nocloud\/\]/m,
      );
      const authorized = guest.stdout.split("\n").filter((l) =>
        l.startsWith("ssh-")
      );
      assert.deepEqual(authorized, [k1.line], "only k1 reached the VM");
      assert.match(guest.stdout, /ssh_host_ed25519_key\.pub/, "new host keys");
      // Guest uptime (s) at each cloud-init stage, from the serial console.
      const log = await Deno.readTextFile(
        String((vm.status.handle as { serial: string }).serial),
      );
      const stages = Object.fromEntries(
        [...log.matchAll(/running '([a-z:-]+)' at .*? Up ([\d.]+) seconds/g)]
          .map(([, stage, up]) => [stage, Number(up)]),
      );
      console.log(JSON.stringify({
        msg: "debian VM create to ssh login",
        vm: vm.id,
        runningMs,
        sshMs,
        cloudInitStagesUptimeS: stages,
      }));

      await cloud.deleteVm(vm.id);
      const tap = tapName(vm.nics[0].mac);
      const bridge = bridgeOf(networkSpec(cloud.network));
      await waitFor(
        "the host clean",
        async () => {
          const links = await ucloudLinks(cloud.net, HOST);
          return !links.includes(tap) && !links.includes(bridge);
        },
        60_000,
        500,
      );
      assert.deepEqual(await qemuPids(`/vms/${vm.id}/`), []);
    });
    const left = (await namespaces()).filter((n) => ours.includes(n));
    assert.deepEqual(left, [], "no namespace left");
  },
});
