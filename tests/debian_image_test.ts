/**
 * The Debian 12 cloud image (scripts/build_debian_image.sh): the build is
 * cached, is a self-contained qcow2 that `qemu-img check` accepts, has no
 * SSH host keys and leaves no loop device or mount. The suite's one boot of
 * it is tests/metadata_debian_e2e_test.ts (through the API, a worker and
 * the metadata service).
 */
import assert from "node:assert/strict";
import { run } from "../drivers/runner.ts";
import { GUEST_CACHE } from "./helpers/cluster.ts";
import { debugfsDisk, ensureDebianImage } from "./helpers/debian_image.ts";

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
