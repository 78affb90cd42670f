/**
 * The Debian 12 cloud image (scripts/build_debian_image.sh: debootstrap,
 * Debian's kernel, systemd, openssh-server and cloud-init on ext4 with
 * extlinux in a compressed qcow2), built once into the shared test cache.
 *
 * @example
 * ```ts
 * const image = await ensureDebianImage();
 * await createOverlay(image, "/tmp/x/vm-1.qcow2"); // tests/helpers/disk_guest.ts
 * ```
 */
import { run } from "../../drivers/runner.ts";
import { GUEST_CACHE, ROOT } from "./cluster.ts";

/**
 * A cold build: debootstrap and about 250 packages from the Debian mirror,
 * an initramfs and a compressed qcow2, on a loaded 2-core machine.
 */
const BUILD_MS = 3_600_000;

/**
 * Builds (cached; the script checks its stamp) the Debian image and returns
 * the path of its `disk.qcow2`.
 */
export async function ensureDebianImage(): Promise<string> {
  const { stdout } = await run("bash", [
    `${ROOT}scripts/build_debian_image.sh`,
  ], { timeoutMs: BUILD_MS, env: { UCLOUD_STATE: GUEST_CACHE } });
  return `${stdout.trim().split("\n").at(-1)}/disk.qcow2`;
}

/**
 * Byte offset of the root filesystem in the image: build_debian_image.sh's
 * partition starts at sector 2048.
 */
const ROOT_FS_OFFSET = 2048 * 512;

/** Options of {@linkcode debugfsDisk}. */
export interface DebugfsOptions {
  /** Open the disk for writing (no VM may run on it). Default false. */
  writable?: boolean;
  /**
   * Read the disk while a qemu has it open for writing (no image lock):
   * what the guest has not written back yet is missing. Default false.
   */
  shared?: boolean;
}

/**
 * Runs each debugfs request (`ls -l /etc`, `write /tmp/f /etc/f`, ...) on
 * the root filesystem of the qcow2 `disk` (the image or an overlay of it)
 * and returns their outputs. qemu-storage-daemon exports the disk as a raw
 * file over FUSE for debugfs, both in private mount and PID namespaces, so
 * the export ends with them on every exit path; on SIGTERM the daemon
 * flushes the qcow2 before it exits.
 */
export async function debugfsDisk(
  disk: string,
  requests: string[],
  { writable = false, shared = false }: DebugfsOptions = {},
): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "uc-debugfs-" });
  try {
    await Deno.writeTextFile(`${dir}/raw`, "");
    const ro = { "read-only": !writable };
    const blockdevs = [
      {
        driver: "file",
        "node-name": "file",
        filename: disk,
        ...ro,
        ...(shared ? { locking: "off" } : {}),
      },
      { driver: "qcow2", "node-name": "disk", file: "file", ...ro },
    ];
    const exported = {
      type: "fuse",
      id: "raw",
      "node-name": "disk",
      mountpoint: `${dir}/raw`,
      writable,
    };
    const script = `set -euo pipefail
qemu-storage-daemon --blockdev "$1" --blockdev "$2" --export "$3" &
qsd=$!
trap 'kill $qsd; wait $qsd' EXIT
for _ in $(seq 300); do [ -s "$4/raw" ] && break; sleep 0.1; done
fs="$4/raw?offset=${ROOT_FS_OFFSET}"
i=0
for request in "\${@:5}"; do
  debugfs ${writable ? "-w " : ""}-R "$request" "$fs" 2>/dev/null >"$4/out.$i"
  i=$((i + 1))
done`;
    await run("unshare", [
      "--mount",
      "--propagation",
      "private",
      "--pid",
      "--fork",
      "--kill-child",
      "bash",
      "-c",
      script,
      "_",
      ...blockdevs.map((b) => JSON.stringify(b)),
      JSON.stringify(exported),
      dir,
      ...requests,
    ], { timeoutMs: 120_000 });
    return await Promise.all(
      requests.map((_, i) => Deno.readTextFile(`${dir}/out.${i}`)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
