/**
 * Launching a VM's qemu: re-adopts the live qemu its pidfile names, or
 * starts a new one detached from the worker (through the runner) with a
 * fresh serial log, and waits until QMP answers; a qemu that does not
 * answer is killed, so no half-started process stays behind.
 *
 * qemu's own `-daemonize` forks after its seccomp filter denies spawning
 * (args.ts), so {@linkcode DETACH} does what it did: qemu runs in its own
 * session in "/", stdin from /dev/null, stdout and stderr appended to
 * `qemu.log`, reparented to init once the launcher exits, which it does
 * when qemu wrote its pidfile (exit 0) or exited first (qemu's exit code
 * and the tail of its log). qemu runs at nice {@linkcode QEMU_NICE}: under
 * load a guest's vCPUs yield to the worker (nice 0), and the sandbox's
 * `resourcecontrol=deny` keeps qemu from raising its priority again.
 *
 * @module
 */
import { CommandError, run } from "../runner.ts";
import { delay } from "./_deadline.ts";
import { ownsPidfile, pidsOwning, processArgs, readPidfile } from "./_proc.ts";
import { type QemuHandle, toHandle } from "./handle.ts";
import { queryStatus } from "./qmp.ts";
import { rotatedLog } from "./serial_log.ts";
import { QMP_CALL_TIMEOUT_MS } from "./status.ts";
import { alive, killQemu } from "./stop.ts";
import type { VmPaths } from "./vm_paths.ts";

const START_TIMEOUT_MS = 30_000;
/** Niceness of every VM's qemu (all its threads: set before its exec). */
export const QEMU_NICE = 10;

/**
 * `sh -c DETACH sh <log> <pidfile> <uid> <command...>`: starts the command
 * in its own session and exits once it wrote its pidfile and switched to
 * `uid` (qemu's `-runas`, right where `-daemonize` would tell its parent
 * that it is up), or with its exit code and its log's tail when it exited
 * first.
 */
export const DETACH = `cd / || exit 1
log=$1 pidfile=$2 uid=$3
shift 3
setsid "$@" </dev/null >>"$log" 2>&1 &
pid=$!
while read -r _ _ state _ <"/proc/$pid/stat" && [ "$state" != Z ]; do
  if [ -s "$pidfile" ] &&
    grep -q "^Uid:[[:space:]]*$uid[[:space:]]" "/proc/$pid/status"; then
    exit 0
  fi
  sleep 0.05
done
wait "$pid"
code=$?
tail -c 2000 "$log" >&2
exit $((code ? code : 1))`;
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
  /** The uid of the command line's `-runas` user. */
  uid: number;
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
  { binary, id, args, uid, paths, accel, signal }: LaunchOptions,
): Promise<QemuHandle> {
  await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await removeFiles(paths.pidfile, paths.qmp, paths.console, paths.vnc);
  // This boot logs to a fresh serial.log and qemu.log; the last one's are
  // serial.log.1 and qemu.log.1.
  for (const log of [paths.serial, paths.log]) {
    await Deno.rename(log, rotatedLog(log)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
  try {
    await run("sh", [
      "-c",
      DETACH,
      "sh",
      paths.log,
      paths.pidfile,
      String(uid),
      "nice",
      "-n",
      String(QEMU_NICE),
      binary,
      ...args,
    ], {
      signal,
      timeoutMs: START_TIMEOUT_MS,
    });
  } catch (err) {
    // Timed out or aborted after the launcher forked: do not leave qemu
    // (or its launcher before it exec'd qemu, pidfile not yet written).
    const orphan = await readPidfile(paths.pidfile);
    if (orphan !== null) {
      await killQemu(toHandle(orphan, paths, accel, new Date()));
    }
    for (const pid of await pidsOwning(paths.pidfile)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    // qemu exited before it wrote its pidfile: its exit code and stderr.
    if (err instanceof CommandError && err.code !== null) {
      throw new CommandError(
        binary,
        args,
        err.code,
        err.stderr,
        `exit ${err.code}`,
        { cause: err },
      );
    }
    throw err;
  }
  const pid = await readPidfile(paths.pidfile);
  if (pid === null) {
    throw new Error(
      `Cannot start vm ${id}: qemu started but ${paths.pidfile} holds no pid`,
    );
  }
  const handle = toHandle(pid, paths, accel, new Date());
  try {
    await waitForQmp(handle, signal);
  } catch (err) {
    await killQemu(handle);
    const log = (await Deno.readTextFile(paths.log).catch(() => "")).trim();
    throw new Error(
      `Cannot start vm ${id}: QMP does not answer${
        log ? `; qemu.log: ${log.slice(-1000)}` : ""
      }`,
      { cause: err },
    );
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
  // One started before VMs had a VNC screen has none.
  if (!args?.includes("-vnc")) delete handle.vnc;
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
