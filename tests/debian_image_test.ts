/**
 * The Debian 12 cloud image (scripts/build_debian_image.sh) with the real
 * qemu driver under TCG: the build is cached, is a self-contained qcow2 that
 * `qemu-img check` accepts and leaves no loop device or mount; a VM on an
 * overlay of it boots from the disk alone (extlinux, no -kernel), shows its
 * kernel messages, cloud-init's run and a login prompt on the serial
 * console, and cloud-init makes SSH host keys (the image has none).
 */
import assert from "node:assert/strict";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import type { QemuHandle } from "../drivers/qemu/handle.ts";
import { run } from "../drivers/runner.ts";
import {
  GUEST_CACHE,
  killQemus,
  qemuPids,
  waitFor,
} from "./helpers/cluster.ts";
import {
  debugfsDisk,
  ensureDebianImage,
  seedNoCloud,
} from "./helpers/debian_image.ts";
import { createOverlay } from "./helpers/disk_guest.ts";

/**
 * A TCG boot of BIOS, extlinux, Debian's kernel, systemd and cloud-init
 * (which probes for a datasource first) on a loaded 2-core machine.
 */
const BOOT_MS = 1_200_000;

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

/**
 * Boots a VM on a fresh overlay of the image in a temp dir (`prepare` may
 * change the overlay first), runs `fn` on it, then kills its qemu and
 * removes the dir.
 */
async function withDebianVm(
  prepare: (disk: string, dir: string) => Promise<void>,
  fn: (handle: QemuHandle, disk: string, started: number) => Promise<void>,
): Promise<void> {
  const image = await ensureDebianImage();
  const dir = await Deno.makeTempDir({ prefix: "uc-debian-" });
  try {
    const disk = `${dir}/vm.qcow2`;
    await createOverlay(image, disk);
    await prepare(disk, dir);
    const driver = new QemuDriver({ stateDir: `${dir}/state`, accel: "tcg" });
    const started = Date.now();
    const handle = await driver.start({
      id: "vm-debian",
      name: "vm-debian",
      cpus: 1,
      memoryMiB: 512,
      boot: { disk, format: "qcow2" },
    });
    const args = (await Deno.readTextFile(`/proc/${handle.pid}/cmdline`))
      .split("\0");
    assert.ok(!args.includes("-kernel"), "a disk boot has no -kernel");
    await fn(handle, disk, started);
    await driver.stop(handle, { force: true });
  } finally {
    await killQemus(dir);
    await waitFor(
      "the qemus to exit",
      async () => (await qemuPids(dir)).length === 0,
      10_000,
    );
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Waits until the VM's serial log matches every mark; logs when each first
 * did (ms after `started`) and returns the log.
 */
async function waitMarks(
  handle: QemuHandle,
  started: number,
  marks: Record<string, RegExp>,
): Promise<string> {
  const times: Record<string, number> = {};
  let log = "";
  await waitFor(
    `${Object.keys(marks).join(", ")} on the serial console`,
    async () => {
      log = await Deno.readTextFile(handle.serial).catch(() => "");
      for (const [name, re] of Object.entries(marks)) {
        if (times[name] === undefined && re.test(log)) {
          times[name] = Date.now() - started;
        }
      }
      return Object.keys(times).length === Object.keys(marks).length;
    },
    BOOT_MS,
    500,
  );
  console.log(
    `serial console milestones (ms after start): ${JSON.stringify(times)}`,
  );
  for (const line of log.split("\n")) {
    if (/Cloud-init v\./.test(line)) console.log(`  ${line.trim()}`);
  }
  return log;
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
});

Deno.test("A VM on an overlay of the Debian image with a NoCloud seed boots from its disk under TCG; its serial console shows the kernel, cloud-init running the user data with the seed's hostname and key, new SSH host keys and a login prompt", async () => {
  await withDebianVm(async (disk, dir) => {
    await run("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "ucloud-debian-test",
      "-f",
      `${dir}/key`,
    ]);
    const key = (await Deno.readTextFile(`${dir}/key.pub`)).trim();
    await seedNoCloud(disk, {
      metaData: "instance-id: iid-ucloud-debian-test\nlocal-hostname: uc-deb\n",
      userData: [
        "#cloud-config",
        "ssh_authorized_keys:",
        `  - ${key}`,
        "runcmd:",
        '  - [sh, -c, "echo UCLOUD-USER-DATA-RAN on $(hostname) >/dev/ttyS0"]',
        "",
      ].join("\n"),
    });
    await run("qemu-img", ["check", "-q", "-f", "qcow2", disk]);
  }, async (handle, _disk, started) => {
    const log = await waitMarks(handle, started, {
      kernel: KERNEL,
      "cloud-init": /Cloud-init v\. \S+ running 'init-local'/,
      "user data": /UCLOUD-USER-DATA-RAN on uc-deb/,
      "cloud-init finished":
        /Cloud-init v\. \S+ finished at .*DataSourceNoCloud \[seed=\/var\/lib\/cloud\/seed\/nocloud\]/,
      "login prompt": /^uc-deb login: /m,
    });
    assert.match(
      log,
      /BEGIN SSH HOST KEY FINGERPRINTS/,
      "cloud-init made host keys",
    );
    assert.match(
      log,
      /Authorized keys from \/home\/debian\/\.ssh\/authorized_keys for user debian[^]*ucloud-debian-test/,
    );
  });
});

Deno.test("Without a datasource the Debian image boots to a login prompt at once: ds-identify leaves cloud-init off, and ssh.service makes the host keys the image lacks", async () => {
  const image = await ensureDebianImage();
  const [baked] = await debugfsDisk(image, ["ls /etc/ssh"]);
  assert.match(baked, /sshd_config/);
  assert.doesNotMatch(baked, /ssh_host_/, "the image has no host keys");
  await withDebianVm(() => Promise.resolve(), async (handle, disk, started) => {
    const log = await waitMarks(handle, started, {
      kernel: KERNEL,
      "login prompt": /^debian login: /m,
    });
    assert.doesNotMatch(log, /Cloud-init v\./, "cloud-init is off");
    // Read while the VM runs: the keys show once the guest writes them back.
    await waitFor(
      "host keys on the VM's disk",
      async () => {
        const [ls] = await debugfsDisk(disk, ["ls /etc/ssh"], { shared: true });
        return /ssh_host_ed25519_key\.pub/.test(ls);
      },
      BOOT_MS,
      2_000,
    );
    console.log(`host keys on disk after ${Date.now() - started} ms`);
  });
});
