/**
 * The disk-booting test guest (scripts/build_guest_disk.sh: extlinux, the
 * tiny guest's kernel and busybox root on ext4 in a qcow2), built once into
 * the shared test cache, and qcow2 overlays on it.
 *
 * @example
 * ```ts
 * const base = await ensureDiskGuest();
 * await createOverlay(base, "/tmp/x/vm-1.qcow2");
 * ```
 */
import { run } from "../../drivers/runner.ts";
import { GUEST_CACHE, ROOT } from "./cluster.ts";

/**
 * Builds (cached; the script checks its stamp) the disk guest and returns
 * the path of its `disk.qcow2`. The first build includes the tiny guest's.
 */
export async function ensureDiskGuest(): Promise<string> {
  const { stdout } = await run("bash", [
    `${ROOT}scripts/build_guest_disk.sh`,
  ], { timeoutMs: 600_000, env: { UCLOUD_STATE: GUEST_CACHE } });
  return `${stdout.trim().split("\n").at(-1)}/disk.qcow2`;
}

/** Creates `path`, a qcow2 overlay whose backing file is the qcow2 `base`. */
export async function createOverlay(base: string, path: string): Promise<void> {
  await run("qemu-img", [
    "create",
    "-q",
    "-f",
    "qcow2",
    "-F",
    "qcow2",
    "-b",
    base,
    path,
  ]);
}
