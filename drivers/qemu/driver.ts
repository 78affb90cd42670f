/**
 * The qemu VM driver: start, re-adopt, inspect, stop and remove daemonized
 * qemu-system-x86_64 processes, one directory per VM under the state dir.
 *
 * @module
 */
import { basename, resolve } from "node:path";
import { run } from "../runner.ts";
import { delay } from "./_deadline.ts";
import { ownsPidfile, processArgs, readPidfile } from "./_proc.ts";
import { detectAccel } from "./accel.ts";
import { qemuArgs, type QemuSpec } from "./args.ts";
import { checkSlot, type QemuNic } from "./nic_options.ts";
import { type VmPaths, vmPaths } from "./vm_paths.ts";
import { listNicSlots, plugNicInto, unplugNicFrom } from "./nics.ts";
import { queryStatus } from "./qmp.ts";
import { rotatedLog } from "./serial_log.ts";
import { type RebootOptions, rebootQemu, type RebootResult } from "./reboot.ts";
import {
  alive,
  killQemu,
  type StopOptions,
  stopQemu,
  type StopResult,
} from "./stop.ts";

/**
 * Plain JSON naming a running qemu; kept in the VM's status so that a
 * restarted worker can re-attach with {@linkcode QemuDriver.recover}.
 */
// A type alias, not an interface, so it is assignable to the JSON record
// kept in the VM's status.
export type QemuHandle = {
  driver: "qemu";
  pid: number;
  dir: string;
  qmp: string;
  /**
   * The serial console socket; absent in handles of VMs started before
   * the console existed (their serial goes only to the log).
   */
  console?: string;
  serial: string;
  pidfile: string;
  accel: "kvm" | "tcg";
  startedAt: string;
};

/** What {@linkcode QemuDriver.inspect} sees. */
export interface QemuState {
  /** "gone": the process is dead (crashed, or killed outside ucloud). */
  state: "running" | "paused" | "shutdown" | "gone" | "unknown";
  /** qemu's own run state when it differs from `state`, or why "unknown". */
  detail?: string;
}

/** Options of the {@linkcode QemuDriver} constructor. */
export interface QemuDriverOptions {
  /** VMs live in `<stateDir>/vms/<id>/`. */
  stateDir: string;
  /** Accelerator mode, see {@linkcode detectAccel}. Default "auto". */
  accel?: "kvm" | "tcg" | "auto";
  /** Default "qemu-system-x86_64". */
  qemuBinary?: string;
}

const START_TIMEOUT_MS = 30_000;
const QMP_READY_TIMEOUT_MS = 10_000;
const QMP_CALL_TIMEOUT_MS = 3_000;
const POLL_MS = 50;

const PAUSED = new Set([
  "paused",
  "suspended",
  "prelaunch",
  "inmigrate",
  "postmigrate",
  "finish-migrate",
  "save-vm",
  "restore-vm",
  "debug",
  "io-error",
  "watchdog",
  "colo",
]);

/**
 * Runs VMs as daemonized qemu processes. Processes are recognised by their
 * `-pidfile <stateDir>/vms/<id>/qemu.pid` argument in /proc/<pid>/cmdline,
 * checked before every signal, so a reused pid is never signalled.
 *
 * @example
 * ```ts
 * const driver = new QemuDriver({ stateDir: "/var/lib/ucloud", accel: "tcg" });
 * const handle = await driver.start({
 *   id: "vm-1", name: "web", cpus: 1, memoryMiB: 128,
 *   boot: { kernel: "/img/vmlinux", initrd: "/img/initrd.cpio.gz", append: "console=ttyS0" },
 * });
 * await driver.inspect(handle); // { state: "running" }
 * await driver.stop(handle); // { how: "shutdown", ms: 900 }
 * await driver.destroy("vm-1");
 * ```
 */
export class QemuDriver {
  /** The driver's name, as shown in host documents and task progress. */
  readonly name = "qemu";
  readonly stateDir: string;
  #accelMode: "kvm" | "tcg" | "auto";
  #accel?: Promise<"kvm" | "tcg">;
  #qemuBinary: string;
  #locks = new Map<string, Promise<unknown>>();

  constructor(
    { stateDir, accel = "auto", qemuBinary = "qemu-system-x86_64" }:
      QemuDriverOptions,
  ) {
    this.stateDir = resolve(stateDir);
    this.#accelMode = accel;
    this.#qemuBinary = qemuBinary;
  }

  /**
   * Starts the VM and resolves once QMP answers. Idempotent: when the VM's
   * pidfile names a live qemu of this VM, resolves with a handle to it.
   */
  async start(
    spec: QemuSpec,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<QemuHandle> {
    const paths = vmPaths(this.stateDir, spec?.id);
    return await this.#exclusive(spec.id, async () => {
      signal?.throwIfAborted();
      this.#accel ??= detectAccel(this.#accelMode);
      const accel = await this.#accel;
      const args = qemuArgs(spec, paths, accel);

      const running = await this.#adopt(spec.id, paths, signal);
      if (running) return running;

      await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
      await removeFiles(paths.pidfile, paths.qmp, paths.console);
      // This boot logs to a fresh serial.log; the last one's is serial.log.1.
      await Deno.rename(paths.serial, rotatedLog(paths.serial)).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
      try {
        await run(this.#qemuBinary, args, {
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
          `Cannot start vm ${spec.id}: qemu exited 0 but wrote no pid to ${paths.pidfile}`,
        );
      }
      const handle = toHandle(pid, paths, accel, new Date());
      try {
        await this.#waitForQmp(handle, signal);
      } catch (err) {
        await killQemu(handle);
        throw new Error(`Cannot start vm ${spec.id}: QMP does not answer`, {
          cause: err,
        });
      }
      return handle;
    });
  }

  /**
   * Re-adopts a VM from its stored handle: resolves with the handle when its
   * pid is alive, is the qemu of this VM, and QMP answers; otherwise null.
   */
  async recover(handle: QemuHandle): Promise<QemuHandle | null> {
    checkHandle(handle);
    if (!ownsPidfile(await processArgs(handle.pid), handle.pidfile)) {
      return null;
    }
    try {
      await queryStatus(handle.qmp, { timeoutMs: QMP_CALL_TIMEOUT_MS });
    } catch {
      return null;
    }
    const { driver, pid, dir, qmp, serial, pidfile, accel, startedAt } = handle;
    const console = handle.console === undefined ? {} : {
      console: handle.console,
    };
    return {
      driver,
      pid,
      dir,
      qmp,
      ...console,
      serial,
      pidfile,
      accel,
      startedAt,
    };
  }

  /** Reports the VM's state; "gone" when its process is dead. */
  async inspect(handle: QemuHandle): Promise<QemuState> {
    checkHandle(handle);
    if (!ownsPidfile(await processArgs(handle.pid), handle.pidfile)) {
      return { state: "gone" };
    }
    let status: string;
    try {
      status = await queryStatus(handle.qmp, {
        timeoutMs: QMP_CALL_TIMEOUT_MS,
      });
    } catch (err) {
      if (!ownsPidfile(await processArgs(handle.pid), handle.pidfile)) {
        return { state: "gone" };
      }
      return {
        state: "unknown",
        detail: err instanceof Error ? err.message : String(err),
      };
    }
    if (status === "running" || status === "shutdown") return { state: status };
    if (PAUSED.has(status)) {
      return status === "paused"
        ? { state: "paused" }
        : { state: "paused", detail: status };
    }
    return { state: "unknown", detail: status };
  }

  /**
   * Stops the VM: asks the guest to power off (ACPI power button) and
   * gives it `timeoutMs` (default 60000), then QMP "quit", SIGTERM and
   * SIGKILL, each given `graceMs` (default 3000); `force` skips the guest's
   * turn. Resolves once the process is gone, saying how it went.
   * Idempotent: a VM already gone is fine ("gone").
   */
  async stop(
    handle: QemuHandle,
    opts: StopOptions = {},
  ): Promise<StopResult> {
    checkHandle(handle);
    const result = await stopQemu(handle, opts);
    await removeFiles(handle.pidfile, handle.qmp);
    if (handle.console !== undefined) await removeFiles(handle.console);
    return result;
  }

  /**
   * Reboots the running VM in place (same process): ctrl-alt-delete for
   * the guest's own reboot, `system_reset` after `timeoutMs` (default
   * 60000) or at once with `force`.
   */
  async reboot(
    handle: QemuHandle,
    opts: RebootOptions = {},
  ): Promise<RebootResult> {
    checkHandle(handle);
    if (!await alive(handle)) {
      throw new Error(
        `Cannot reboot vm ${
          vmId(handle)
        }: qemu pid ${handle.pid} is not running`,
      );
    }
    return await rebootQemu(handle, opts);
  }

  /**
   * Slots of the NICs the VM has now, sorted (from qemu: devices `nicN`,
   * including one whose unplug the guest has not finished).
   */
  async listNics(
    handle: QemuHandle,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<number[]> {
    checkHandle(handle);
    return await listNicSlots(handle, signal);
  }

  /**
   * Hot-plugs `nic` (a virtio-net-pci on the existing tap `nic.tap`) into
   * root port `hp<slot>` of the running VM. Idempotent: a NIC with the same
   * MAC already in the slot is fine; one with another MAC is an error (unplug
   * it first). When `device_add` fails the netdev is removed again, so
   * nothing half-made stays.
   */
  async plugNic(
    handle: QemuHandle,
    nic: QemuNic,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<void> {
    checkHandle(handle);
    await this.#exclusive(
      `nics:${handle.dir}`,
      () => plugNicInto(handle, nic, signal),
    );
  }

  /**
   * Hot-unplugs the NIC of `slot`: `device_del`, then waits until the guest
   * released it (the device is gone from qemu), then removes its netdev.
   * Throws after `timeoutMs` (default 20000) when the guest does not
   * release it. Idempotent: an empty slot is fine.
   */
  async unplugNic(
    handle: QemuHandle,
    slot: number,
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<void> {
    checkHandle(handle);
    checkSlot(slot, "slot", "unplug NIC");
    await this.#exclusive(
      `nics:${handle.dir}`,
      () => unplugNicFrom(handle, slot, opts),
    );
  }

  /**
   * Removes `<stateDir>/vms/<id>` and everything in it. Idempotent; refuses
   * while the VM's qemu is still running.
   */
  async destroy(id: string): Promise<void> {
    const paths = vmPaths(this.stateDir, id);
    return await this.#exclusive(id, async () => {
      const pid = await readPidfile(paths.pidfile);
      if (
        pid !== null && ownsPidfile(await processArgs(pid), paths.pidfile)
      ) {
        throw new Error(
          `Cannot destroy vm ${id}: qemu pid ${pid} is still running; stop it first`,
        );
      }
      await Deno.remove(paths.dir, { recursive: true }).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    });
  }

  /** Ids of the VMs that have a directory under `<stateDir>/vms`, sorted. */
  async listLocal(): Promise<string[]> {
    const ids: string[] = [];
    try {
      for await (const entry of Deno.readDir(`${this.stateDir}/vms`)) {
        if (!entry.isDirectory) continue;
        try {
          vmPaths(this.stateDir, entry.name);
          ids.push(entry.name);
        } catch {
          // not a VM directory of ours
        }
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    return ids.sort();
  }

  /**
   * Self-fencing: SIGKILLs every qemu of this state dir (or those of VMs
   * `ids`) at once, without grace. Returns the ids it killed.
   */
  async fence(ids?: string[]): Promise<string[]> {
    const killed: string[] = [];
    await Promise.all((ids ?? await this.listLocal()).map(async (id) => {
      const paths = vmPaths(this.stateDir, id);
      const pid = await readPidfile(paths.pidfile);
      if (pid === null) return;
      if (!ownsPidfile(await processArgs(pid), paths.pidfile)) return;
      try {
        Deno.kill(pid, "SIGKILL");
        killed.push(id);
      } catch {
        // exited meanwhile
      }
    }));
    return killed.sort();
  }

  /**
   * Runs `fn` after any other call holding the same key in this process:
   * the VM id for start/destroy, `nics:<dir>` for NIC changes.
   */
  async #exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(id) ?? Promise.resolve();
    const current = before.catch(() => {}).then(fn);
    const tail = current.catch(() => {});
    this.#locks.set(id, tail);
    try {
      return await current;
    } finally {
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    }
  }

  /** A handle to the live qemu named by the VM's pidfile, or null. */
  async #adopt(
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
      await this.#waitForQmp(handle, signal);
    } catch (err) {
      signal?.throwIfAborted();
      throw new Error(
        `Cannot start vm ${id}: qemu pid ${pid} is running but QMP does not answer; stop it first`,
        { cause: err },
      );
    }
    return handle;
  }

  async #waitForQmp(handle: QemuHandle, signal?: AbortSignal): Promise<void> {
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
}

function toHandle(
  pid: number,
  paths: VmPaths,
  accel: "kvm" | "tcg",
  startedAt: Date,
): QemuHandle {
  return {
    driver: "qemu",
    pid,
    dir: paths.dir,
    qmp: paths.qmp,
    console: paths.console,
    serial: paths.serial,
    pidfile: paths.pidfile,
    accel,
    startedAt: startedAt.toISOString(),
  };
}

function checkHandle(handle: QemuHandle): void {
  const fail = (problem: string) => {
    throw new TypeError(`Cannot use qemu handle: ${problem}`);
  };
  if (typeof handle !== "object" || handle === null) fail("must be an object");
  if (handle.driver !== "qemu") {
    fail(`driver must be "qemu", got ${JSON.stringify(handle.driver)}`);
  }
  if (!Number.isInteger(handle.pid) || handle.pid <= 1) {
    fail(`pid must be an integer above 1, got ${JSON.stringify(handle.pid)}`);
  }
  for (const key of ["dir", "qmp", "serial", "pidfile"] as const) {
    if (typeof handle[key] !== "string" || !handle[key].startsWith("/")) {
      fail(`${key} must be an absolute path`);
    }
  }
  if (
    handle.console !== undefined &&
    (typeof handle.console !== "string" || !handle.console.startsWith("/"))
  ) {
    fail("console must be an absolute path");
  }
}

/** The VM id: the name of its directory. */
function vmId(handle: QemuHandle): string {
  return basename(handle.dir);
}

async function removeFiles(...paths: string[]): Promise<void> {
  for (const path of paths) {
    await Deno.remove(path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}
