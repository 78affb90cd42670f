/**
 * The Debian 12 cloud image (scripts/build_debian_image.sh) with the real
 * qemu driver under TCG: the build is cached, is a self-contained qcow2 that
 * `qemu-img check` accepts, has no SSH host keys and leaves no loop device
 * or mount; a VM on an overlay of it, on an IPv6-only network like a ucloud
 * private network (tests/helpers/nocloud_lan.ts), boots from the disk alone
 * (extlinux, no -kernel), finds cloud-init's NoCloud seed over HTTP from
 * the SMBIOS serial the driver gives it, and takes ssh logins over its
 * SLAAC address with the seed's key only.
 */
import assert from "node:assert/strict";
import { eui64 } from "../core/netaddr.ts";
import { NOCLOUD_SERIAL } from "../drivers/qemu/args.ts";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import { run } from "../drivers/runner.ts";
import {
  GUEST_CACHE,
  killQemus,
  qemuPids,
  waitFor,
} from "./helpers/cluster.ts";
import { debugfsDisk, ensureDebianImage } from "./helpers/debian_image.ts";
import { createOverlay } from "./helpers/disk_guest.ts";
import { NocloudLan } from "./helpers/nocloud_lan.ts";

/**
 * A TCG boot of BIOS, extlinux, Debian's kernel, systemd and cloud-init's
 * four stages on a loaded 2-core machine.
 */
const BOOT_MS = 1_200_000;
const MAC = "52:54:00:ec:20:01";

/** Loop devices on a build's disk.raw and mounts in a build's temp dir. */
async function buildLeftovers(): Promise<string[]> {
  const { stdout } = await run("losetup", ["-a"]);
  const mounts = await Deno.readTextFile("/proc/self/mountinfo");
  return [
    ...stdout.split("\n").filter((line) => line.includes("/disk.raw")),
    ...mounts.split("\n").filter((line) =>
      /\/tmp\.\w+\/(mnt|root)[ /]/.test(line)
    ),
  ];
}

const KERNEL = /Command line: .*root=UUID=\S+ .*console=ttyS0/;

Deno.test("build_debian_image.sh builds a cached qcow2 without a backing file that qemu-img check accepts, and leaves no loop device or mount", async () => {
  let started = Date.now();
  const disk = await ensureDebianImage();
  console.log(
    `build_debian_image.sh (cold or cached): ${Date.now() - started} ms`,
  );
  const dir = `${GUEST_CACHE}/images/debian-12`;
  assert.equal(disk, `${dir}/disk.qcow2`);
  const { stdout } = await run("qemu-img", [
    "info",
    "-f",
    "qcow2",
    "--output=json",
    disk,
  ]);
  const info = JSON.parse(stdout);
  assert.equal(info.format, "qcow2");
  assert.equal(info["virtual-size"], 3 * 1024 ** 3);
  assert.equal(info["backing-filename"], undefined);
  assert.equal(info["format-specific"].data.corrupt, false);
  await run("qemu-img", ["check", "-q", "-f", "qcow2", disk], {
    timeoutMs: 120_000,
  });
  console.log(
    `image: ${Math.round(info["actual-size"] / 2 ** 20)} MiB on disk`,
  );

  const packages = await Deno.readTextFile(`${dir}/packages.txt`);
  for (
    const name of [
      "linux-image-amd64",
      "systemd",
      "openssh-server",
      "cloud-init",
      "ifupdown",
    ]
  ) {
    assert.match(packages, new RegExp(`^${name} \\S+$`, "m"), name);
  }
  const { mtime } = await Deno.stat(disk);
  started = Date.now();
  assert.equal(await ensureDebianImage(), disk);
  console.log(`cached build_debian_image.sh run: ${Date.now() - started} ms`);
  assert.deepEqual((await Deno.stat(disk)).mtime, mtime, "cached: not rebuilt");
  assert.deepEqual(await buildLeftovers(), []);
  const [etcSsh] = await debugfsDisk(disk, ["ls /etc/ssh"]);
  assert.match(etcSsh, /sshd_config/);
  assert.doesNotMatch(etcSsh, /ssh_host_/, "the image has no host keys");
});

/**
 * Seconds each unit took to start, from `systemctl show -p Id,
 * InactiveExitTimestampMonotonic,ActiveEnterTimestampMonotonic` output.
 */
function unitSeconds(show: string): Record<string, number> {
  const units: Record<string, number> = {};
  for (const block of show.split("\n\n")) {
    const p = Object.fromEntries(
      block.split("\n").map((line) => line.split("=", 2)),
    );
    if (!p.Id) continue;
    const us = Number(p.ActiveEnterTimestampMonotonic) -
      Number(p.InactiveExitTimestampMonotonic);
    units[p.Id] = Math.round(us / 100_000) / 10;
  }
  return units;
}

/** ssh from the network's host side to `debian@<addr>` with `key`. */
function ssh(lan: NocloudLan, key: string, addr: string, command: string) {
  return lan.run("ssh", [
    "-i",
    key,
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=10",
    `debian@${addr}`,
    command,
  ], { timeoutMs: 60_000 });
}

Deno.test("A VM from the Debian image on an IPv6-only network reads its NoCloud seed over HTTP from the SMBIOS serial; ssh over its SLAAC address with the seed's key shows the seed's hostname and the file the user data wrote, and another key is refused", async () => {
  const image = await ensureDebianImage();
  const dir = await Deno.makeTempDir({ prefix: "uc-debian-" });
  let lan: NocloudLan | undefined;
  try {
    for (const name of ["key", "other"]) {
      await run("ssh-keygen", [
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        `ucloud-debian-${name}`,
        "-f",
        `${dir}/${name}`,
      ]);
    }
    const key = (await Deno.readTextFile(`${dir}/key.pub`)).trim();
    lan = await NocloudLan.create(dir, {
      "meta-data": "instance-id: iid-ucloud-debian-test\n" +
        `local-hostname: uc-deb\npublic-keys:\n  - ${key}\n`,
      "user-data": [
        "#cloud-config",
        "write_files:",
        "  - path: /var/tmp/ucloud-user-data",
        '    content: "written by user data\\n"',
        "",
      ].join("\n"),
      "vendor-data": "",
    });
    const disk = `${dir}/vm.qcow2`;
    await createOverlay(image, disk);
    const driver = new QemuDriver({
      stateDir: `${dir}/state`,
      accel: "tcg",
      qemuBinary: lan.qemuBinary,
    });
    const started = Date.now();
    const handle = await driver.start({
      id: "vm-debian",
      name: "vm-debian",
      cpus: 1,
      memoryMiB: 512,
      boot: { disk, format: "qcow2" },
      nics: [{ slot: 0, tap: lan.tap, mac: MAC }],
    });
    const args = (await Deno.readTextFile(`/proc/${handle.pid}/cmdline`))
      .split("\0");
    assert.ok(!args.includes("-kernel"), "a disk boot has no -kernel");
    assert.ok(args.includes(`type=1,serial=${NOCLOUD_SERIAL}`), "the serial");

    const addr = eui64(lan.prefix, MAC);
    const login = await waitFor(
      `an ssh login to ${addr}`,
      () =>
        ssh(
          lan!,
          `${dir}/key`,
          addr,
          "hostname; cat /var/tmp/ucloud-user-data",
        ),
      BOOT_MS,
      2_000,
    );
    const sshMs = Date.now() - started;
    assert.equal(login.stdout, "uc-deb\nwritten by user data\n");
    await assert.rejects(
      () => ssh(lan!, `${dir}/other`, addr, "true"),
      /Permission denied/,
    );
    const guest = await ssh(
      lan,
      `${dir}/key`,
      addr,
      [
        "cat /var/lib/cloud/instance/datasource",
        "ls /etc/ssh",
        "systemctl show -p Id,InactiveExitTimestampMonotonic," +
        "ActiveEnterTimestampMonotonic cloud-init-local networking cloud-init",
      ].join("; "),
    );
    assert.match(
      guest.stdout,
      /^DataSourceNoCloudNet: .*\[seed=dmi,http:\/\/\[fd00:ec2::254\]\/nocloud\/\]/m,
    );
    assert.match(guest.stdout, /ssh_host_ed25519_key\.pub/, "new host keys");
    const log = await Deno.readTextFile(handle.serial);
    assert.match(log, KERNEL);
    const seed = lan.requests.filter((r) => r.from === addr);
    assert.deepEqual(
      seed.map((r) => [r.path, r.status]),
      [
        ["/nocloud/meta-data", 200],
        ["/nocloud/user-data", 200],
        ["/nocloud/vendor-data", 200],
      ],
    );
    // Guest uptime (s) at each cloud-init stage; host ms to seed and ssh.
    const stages = Object.fromEntries(
      [...log.matchAll(/running '([a-z:-]+)' at .*? Up ([\d.]+) seconds/g)]
        .map(([, stage, up]) => [stage, Number(up)]),
    );
    console.log(
      `cloud-init stages (guest uptime s): ${JSON.stringify(stages)}; ` +
        `ms after start: seed ${seed[0].at - started}, ssh ${sshMs}; ` +
        JSON.stringify(unitSeconds(guest.stdout)),
    );
    await driver.stop(handle, { force: true });
  } finally {
    await killQemus(dir);
    await waitFor(
      "the qemus to exit",
      async () => (await qemuPids(dir)).length === 0,
      10_000,
    );
    await lan?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
