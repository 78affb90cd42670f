/**
 * The tiny test guest for the qemu driver's tests: its boot spec, a driver
 * on a throwaway state dir, waits. Internal to the tests.
 *
 * @module
 */
import { run } from "../runner.ts";
import { processArgs } from "./_proc.ts";
import type { QemuSpec } from "./args.ts";
import { QemuDriver } from "./driver.ts";
import type { QemuHandle } from "./handle.ts";

/** What the tiny guest prints once its init is up. */
export const MARKER = "UCLOUD-GUEST-READY";
const BUILD_GUEST = new URL("../../scripts/build_guest.sh", import.meta.url)
  .pathname;

/** The guest cache the integration tests share (tests/helpers/cluster.ts). */
const GUEST_CACHE = Deno.env.get("UCLOUD_TEST_CACHE") ??
  "/var/tmp/ucloud-test-cache";

let guestDir: Promise<string> | undefined;

/** The tiny test guest, built (and cached) by scripts/build_guest.sh. */
function tinyGuest(): Promise<string> {
  guestDir ??= run("bash", [BUILD_GUEST], {
    timeoutMs: 600_000,
    env: { UCLOUD_STATE: GUEST_CACHE },
  }).then(({ stdout }) => stdout.trim().split("\n").at(-1)!);
  return guestDir;
}

/** `extraAppend`: more kernel command line, e.g. "ucloud.ignore_acpi=1". */
export async function guestSpec(
  id: string,
  extraAppend = "",
): Promise<QemuSpec> {
  const dir = await tinyGuest();
  const append = (await Deno.readTextFile(`${dir}/cmdline`)).trim();
  return {
    id,
    name: `test ${id}`,
    cpus: 1,
    memoryMiB: 128,
    boot: {
      kernel: `${dir}/vmlinux`,
      initrd: `${dir}/initrd.cpio.gz`,
      append: extraAppend ? `${append} ${extraAppend}` : append,
    },
  };
}

/**
 * Runs `fn` with a driver on a fresh temp state dir; afterwards kills every
 * qemu started under that dir (found through /proc) and removes the dir.
 */
export async function withDriver(
  fn: (driver: QemuDriver, stateDir: string) => Promise<void>,
): Promise<void> {
  const stateDir = await Deno.makeTempDir({ prefix: "ucloud-qemu-" });
  try {
    await fn(new QemuDriver({ stateDir, accel: "tcg" }), stateDir);
  } finally {
    for (const pid of await qemuPidsUnder(stateDir)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await Deno.remove(stateDir, { recursive: true });
  }
}

/** Pids of the qemu processes whose pidfile is under `stateDir`. */
export async function qemuPidsUnder(stateDir: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const args = await processArgs(Number(entry.name));
    const i = args?.indexOf("-pidfile") ?? -1;
    if (args && i >= 0 && args[i + 1]?.startsWith(`${stateDir}/`)) {
      pids.push(Number(entry.name));
    }
  }
  return pids;
}

/** Polls `check` every 50 ms; resolves with the ms it took. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  while (!await check()) {
    if (Date.now() - started > timeoutMs) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now() - started;
}

/** Whether the handle's serial log shows `marker` (default MARKER) `times` times. */
export const serialHasMarker =
  (handle: QemuHandle, marker = MARKER, times = 1) => async () =>
    (await serialText(handle)).split(marker).length > times;

/** The handle's serial log so far ("" before it exists). */
export async function serialText(handle: QemuHandle): Promise<string> {
  try {
    return await Deno.readTextFile(handle.serial);
  } catch {
    return "";
  }
}

/** Whether `pid` is gone (or a zombie). */
export const pidGone = (pid: number) => async () =>
  (await processArgs(pid)) === null;
