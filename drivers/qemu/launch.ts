/**
 * Launching a VM's qemu: re-adopts the live qemu its pidfile names, or
 * starts a new daemon (through the runner) with a fresh serial log, and
 * waits until QMP answers; a qemu that does not answer is killed, so no
 * half-started process stays behind.
 *
 * @module
 */
import { run } from "../runner.ts";
import { delay } from "./_deadline.ts";
import { ownsPidfile, processArgs, readPidfile } from "./_proc.ts";
import { type QemuHandle, toHandle } from "./handle.ts";
import { queryStatus } from "./qmp.ts";
import { rotatedLog } from "./serial_log.ts";
import { QMP_CALL_TIMEOUT_MS } from "./status.ts";
import { alive, killQemu } from "./stop.ts";
import type { VmPaths } from "./vm_paths.ts";

const START_TIMEOUT_MS = 30_000;
const QMP_READY_TIMEOUT_MS = 10_000;
const POLL_MS = 50;

/** How to launch one VM's qemu. */
export interface LaunchOptions {
  /** The qemu binary, e.g. "qemu-system-x86_64". */
  binary: string;
  /** The VM id, for error messages. */
  id: string;
  /** The command line (drivers/qemu/args.ts). */
  args: string[];
  paths: VmPaths;
  accel: "kvm" | "tcg";
  signal?: AbortSignal;
}

/**
 * Starts a daemonized qemu and resolves with its handle once QMP answers.
 * Kills it again when it does not, or when the start times out or is
 * aborted after the daemon forked.
 */
export async function launchQemu(
  { binary, id, args, paths, accel, signal }: LaunchOptions,
): Promise<QemuHandle> {
  await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await removeFiles(paths.pidfile, paths.qmp, paths.console);
  // This boot logs to a fresh serial.log; the last one's is serial.log.1.
  await Deno.rename(paths.serial, rotatedLog(paths.serial)).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  try {
    await run(binary, args, {
      signal,
      timeoutMs: START_TIMEOUT_MS,
    });
  } catch (err) {
    // Timed out or aborted after the daemon forked: do not leave it behind.
    const orphan = await readPidfile(paths.pidfile);
    if (orphan !== null) {
      await killQemu(toHandle(orphan, paths, accel, new Date()));
    }
    throw err;
  }
  const pid = await readPidfile(paths.pidfile);
  if (pid === null) {
    throw new Error(
      `Cannot start vm ${id}: qemu exited 0 but wrote no pid to ${paths.pidfile}`,
    );
  }
  const handle = toHandle(pid, paths, accel, new Date());
  try {
    await waitForQmp(handle, signal);
  } catch (err) {
    await killQemu(handle);
    throw new Error(`Cannot start vm ${id}: QMP does not answer`, {
      cause: err,
    });
  }
  return handle;
}

/** A handle to the live qemu named by the VM's pidfile, or null. */
export async function adoptQemu(
  id: string,
  paths: VmPaths,
  signal?: AbortSignal,
): Promise<QemuHandle | null> {
  const pid = await readPidfile(paths.pidfile);
  if (pid === null) return null;
  const args = await processArgs(pid);
  if (!ownsPidfile(args, paths.pidfile)) return null;
  const accelArg = args?.[args.indexOf("-accel") + 1] ?? "";
  const { mtime } = await Deno.stat(paths.pidfile);
  const handle = toHandle(
    pid,
    paths,
    accelArg.startsWith("kvm") ? "kvm" : "tcg",
    mtime ?? new Date(),
  );
  // A qemu started before VMs had a console socket logs its serial only.
  if (!args?.some((arg) => arg.startsWith("socket,id=serial0,"))) {
    delete handle.console;
  }
  try {
    await waitForQmp(handle, signal);
  } catch (err) {
    signal?.throwIfAborted();
    throw new Error(
      `Cannot start vm ${id}: qemu pid ${pid} is running but QMP does not answer; stop it first`,
      { cause: err },
    );
  }
  return handle;
}

/** Waits until QMP answers (10 s at most); throws when qemu exits first. */
async function waitForQmp(
  handle: QemuHandle,
  signal?: AbortSignal,
): Promise<void> {
  const until = Date.now() + QMP_READY_TIMEOUT_MS;
  while (true) {
    try {
      await queryStatus(handle.qmp, {
        signal,
        timeoutMs: Math.max(
          1,
          Math.min(QMP_CALL_TIMEOUT_MS, until - Date.now()),
        ),
      });
      return;
    } catch (err) {
      signal?.throwIfAborted();
      if (!await alive(handle)) {
        throw new Error(`qemu pid ${handle.pid} exited`, { cause: err });
      }
      if (Date.now() >= until) throw err;
    }
    await delay(POLL_MS, signal);
  }
}

/** Removes the files of `paths` that exist. */
export async function removeFiles(...paths: string[]): Promise<void> {
  for (const path of paths) {
    await Deno.remove(path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}
