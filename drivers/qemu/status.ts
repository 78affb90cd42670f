/**
 * What the qemu of a handle is doing: whether it is still this VM's process
 * and answers QMP (re-adoption after a worker restart), and its run state
 * mapped to the driver's states.
 *
 * @module
 */
import { ownsPidfile, processArgs } from "./_proc.ts";
import { checkHandle, type QemuHandle } from "./handle.ts";
import { queryStatus } from "./qmp.ts";

/** What {@linkcode QemuDriver.inspect} sees. */
export interface QemuState {
  /** "gone": the process is dead (crashed, or killed outside ucloud). */
  state: "running" | "paused" | "shutdown" | "gone" | "unknown";
  /** qemu's own run state when it differs from `state`, or why "unknown". */
  detail?: string;
}

/** How long one QMP call to a running qemu may take. */
export const QMP_CALL_TIMEOUT_MS = 3_000;

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
 * Re-adopts a VM from its stored handle: resolves with the handle when its
 * pid is alive, is the qemu of this VM, and QMP answers; otherwise null.
 */
export async function recoverQemu(
  handle: QemuHandle,
): Promise<QemuHandle | null> {
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
  const vnc = handle.vnc === undefined ? {} : { vnc: handle.vnc };
  return {
    driver,
    pid,
    dir,
    qmp,
    ...console,
    ...vnc,
    serial,
    pidfile,
    accel,
    startedAt,
  };
}

/** Reports the VM's state; "gone" when its process is dead. */
export async function inspectQemu(handle: QemuHandle): Promise<QemuState> {
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
