/**
 * The handle of a running qemu: plain JSON kept in the VM's status (pid,
 * files, accelerator, start time), built from the VM's paths and checked
 * before the driver acts on one.
 *
 * @module
 */
import { basename } from "node:path";
import type { VmPaths } from "./vm_paths.ts";

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
  /**
   * The VNC socket of the VGA screen (the console in the browser); absent
   * in handles of VMs started before VMs had one.
   */
  vnc?: string;
  serial: string;
  pidfile: string;
  accel: "kvm" | "tcg";
  startedAt: string;
};

/** The handle of qemu `pid` started with `accel` for the VM of `paths`. */
export function toHandle(
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
    vnc: paths.vnc,
    serial: paths.serial,
    pidfile: paths.pidfile,
    accel,
    startedAt: startedAt.toISOString(),
  };
}

/** Throws TypeError "Cannot use qemu handle: ..." for a malformed handle. */
export function checkHandle(handle: QemuHandle): void {
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
  for (const key of ["console", "vnc"] as const) {
    const path = handle[key];
    if (
      path !== undefined && (typeof path !== "string" || !path.startsWith("/"))
    ) {
      fail(`${key} must be an absolute path`);
    }
  }
}

/** The VM id: the name of its directory. */
export function vmId(handle: QemuHandle): string {
  return basename(handle.dir);
}
