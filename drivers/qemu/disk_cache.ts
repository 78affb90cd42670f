/**
 * The host cache mode a VM's disk is opened with. "none" (O_DIRECT, no host
 * page cache: what the guest flushed is on the store, where another host
 * that boots the disk after a failover reads it) wherever the disk's
 * filesystem takes O_DIRECT; "writeback" where it does not (tmpfs before
 * Linux 6.6, ramfs, some FUSE filesystems), which still writes through to
 * the file on every guest flush. qemu refuses to open a disk with
 * `cache=none` on such a filesystem.
 *
 * @example
 * ```ts
 * await diskCacheMode("/var/lib/ucloud/image-store/disks/vm-1.qcow2"); // "none"
 * ```
 *
 * @module
 */
import { CommandError, run } from "../runner.ts";

/** A qemu `-drive cache=` mode that the driver uses. */
export type DiskCache = "none" | "writeback";

/** Time for the probe: one 4 KiB read. */
const PROBE_TIMEOUT_MS = 10_000;

/**
 * "writeback" when `path` cannot be opened with O_DIRECT (EINVAL), else
 * "none": a file that is missing or unreadable is left for qemu to report.
 * Rejects only when `signal` aborts.
 */
export async function diskCacheMode(
  path: string,
  signal?: AbortSignal,
): Promise<DiskCache> {
  try {
    await run("dd", [
      `if=${path}`,
      "of=/dev/null",
      "iflag=direct",
      "bs=4096",
      "count=1",
      "status=none",
    ], { signal, timeoutMs: PROBE_TIMEOUT_MS });
    return "none";
  } catch (err) {
    signal?.throwIfAborted();
    const noDirect = err instanceof CommandError &&
      /Invalid argument/.test(err.stderr);
    return noDirect ? "writeback" : "none";
  }
}
