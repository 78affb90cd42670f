/**
 * Where a VM's qemu files live: `<stateDir>/vms/<id>/` with its pidfile,
 * QMP, console and VNC sockets and serial log; checks ids and that the socket
 * paths fit a unix socket address. Pure, no I/O.
 *
 * @module
 */

/** Files of one VM under the state directory. */
export interface VmPaths {
  dir: string;
  pidfile: string;
  qmp: string;
  /** Unix socket of the serial console (one client at a time). */
  console: string;
  /**
   * Unix socket of the VGA screen's VNC server (no password: the
   * directory is root's alone, and the console relay, workers/console_relay.ts,
   * lets in only holders of a console grant).
   */
  vnc: string;
  /** Everything the guest wrote to its serial console. */
  serial: string;
  /** What qemu itself wrote (its stderr: errors, warnings). */
  log: string;
}

/** Largest unix socket path: sun_path is 108 bytes with the final NUL. */
const MAX_SOCKET_PATH = 107;
const ID = /^[a-z0-9-]{1,64}$/;

/**
 * The files of VM `id`:
 * `<stateDir>/vms/<id>/{qemu.pid,qmp.sock,console.sock,vnc.sock,serial.log,qemu.log}`.
 * Throws TypeError for a relative `stateDir` or a bad id, and RangeError when
 * a socket path would not fit a unix socket address (107 bytes).
 *
 * @example
 * ```ts
 * vmPaths("/var/lib/ucloud", "vm-1").qmp; // "/var/lib/ucloud/vms/vm-1/qmp.sock"
 * ```
 */
export function vmPaths(stateDir: string, id: string): VmPaths {
  if (typeof stateDir !== "string" || !stateDir.startsWith("/")) {
    throw new TypeError(
      `Cannot build VM paths: stateDir must be an absolute path, got ${
        JSON.stringify(stateDir)
      }`,
    );
  }
  checkId(id, "build VM paths");
  const dir = `${stateDir.replace(/\/+$/, "")}/vms/${id}`;
  const paths = {
    dir,
    pidfile: `${dir}/qemu.pid`,
    qmp: `${dir}/qmp.sock`,
    console: `${dir}/console.sock`,
    vnc: `${dir}/vnc.sock`,
    serial: `${dir}/serial.log`,
    log: `${dir}/qemu.log`,
  };
  checkSocketPath("QMP", paths.qmp, "build VM paths");
  checkSocketPath("console", paths.console, "build VM paths");
  checkSocketPath("VNC", paths.vnc, "build VM paths");
  return paths;
}

/**
 * Throws RangeError "Cannot <task>: <what> socket path ... is N bytes" when
 * `path` does not fit a unix socket address (107 bytes).
 */
export function checkSocketPath(
  what: string,
  path: string,
  task = "build qemu arguments",
): void {
  const length = new TextEncoder().encode(path).length;
  if (length > MAX_SOCKET_PATH) {
    throw new RangeError(
      `Cannot ${task}: ${what} socket path ${path} is ${length} bytes, ` +
        `more than the ${MAX_SOCKET_PATH} a unix socket allows; use a shorter stateDir`,
    );
  }
}

/** Throws TypeError "Cannot <task>: id must match ..." for a bad VM id. */
export function checkId(id: unknown, task = "build qemu arguments"): void {
  if (typeof id !== "string" || !ID.test(id)) {
    throw new TypeError(
      `Cannot ${task}: id must match ${ID}, got ${JSON.stringify(id)}`,
    );
  }
}
