/**
 * Pure building of a qemu-system-x86_64 command line; no I/O.
 *
 * @module
 */

/** What to run: validated by {@linkcode qemuArgs}. */
export interface QemuSpec {
  /** VM id, `/^[a-z0-9-]{1,64}$/`; names the state directory. */
  id: string;
  /** Human name shown by qemu (`-name`), 1 to 128 printable characters. */
  name: string;
  /** Virtual CPUs, an integer from 1 to 64. */
  cpus: number;
  /** Guest RAM in MiB, an integer from 64 to 1048576. */
  memoryMiB: number;
  /** Boot a kernel directly, or from a qcow2 disk through the firmware. */
  boot: { kernel: string; initrd?: string; append?: string } | {
    disk: string;
  };
}

/** Files of one VM under the state directory. */
export interface VmPaths {
  dir: string;
  pidfile: string;
  qmp: string;
  serial: string;
}

/** Largest unix socket path: sun_path is 108 bytes with the final NUL. */
const MAX_SOCKET_PATH = 107;
const ID = /^[a-z0-9-]{1,64}$/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * The files of VM `id`: `<stateDir>/vms/<id>/{qemu.pid,qmp.sock,serial.log}`.
 * Throws TypeError for a relative `stateDir` or a bad id, and RangeError when
 * the QMP socket path would not fit a unix socket address (107 bytes).
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
    serial: `${dir}/serial.log`,
  };
  checkSocketPath(paths.qmp, "build VM paths");
  return paths;
}

/**
 * Builds the arguments of a daemonized qemu-system-x86_64 for `spec`: q35,
 * no default devices, no display, QMP on `paths.qmp`, the serial console
 * written to `paths.serial`, and `-pidfile` (by which the driver recognises
 * its processes). Throws TypeError or RangeError naming the bad field.
 *
 * @example
 * ```ts
 * const spec = {
 *   id: "vm-1", name: "web", cpus: 1, memoryMiB: 128,
 *   boot: { kernel: "/img/vmlinux", initrd: "/img/initrd.cpio.gz", append: "console=ttyS0" },
 * };
 * const args = qemuArgs(spec, vmPaths("/var/lib/ucloud", "vm-1"), "tcg");
 * await run("qemu-system-x86_64", args);
 * ```
 */
export function qemuArgs(
  spec: QemuSpec,
  paths: VmPaths,
  accel: "kvm" | "tcg",
): string[] {
  checkSpec(spec);
  for (const key of ["pidfile", "qmp", "serial"] as const) {
    checkFile(`paths.${key}`, paths?.[key]);
  }
  checkSocketPath(paths.qmp);
  if (accel !== "kvm" && accel !== "tcg") {
    throw new TypeError(
      `Cannot build qemu arguments: accel must be "kvm" or "tcg", got ${
        JSON.stringify(accel)
      }`,
    );
  }

  const args = [
    "-name",
    `guest=${opt(spec.name)}`,
    "-machine",
    "q35",
    "-accel",
    accel === "kvm" ? "kvm" : "tcg,thread=multi",
    "-cpu",
    accel === "kvm" ? "host" : "max",
    "-smp",
    String(spec.cpus),
    "-m",
    `${spec.memoryMiB}M`,
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-shutdown",
    "-daemonize",
    "-pidfile",
    paths.pidfile,
    "-chardev",
    `socket,id=qmp,path=${opt(paths.qmp)},server=on,wait=off`,
    "-mon",
    "chardev=qmp,mode=control",
    "-chardev",
    `file,id=serial0,path=${opt(paths.serial)}`,
    "-serial",
    "chardev:serial0",
  ];
  if ("kernel" in spec.boot) {
    args.push("-kernel", spec.boot.kernel);
    if (spec.boot.initrd !== undefined) args.push("-initrd", spec.boot.initrd);
    if (spec.boot.append !== undefined) args.push("-append", spec.boot.append);
  } else {
    args.push(
      "-drive",
      `file=${opt(spec.boot.disk)},format=qcow2,if=none,id=disk0`,
      "-device",
      "virtio-blk-pci,drive=disk0,bootindex=0",
    );
  }
  return args;
}

/** Escapes a value inside a qemu `key=value,...` option list. */
function opt(value: string): string {
  return value.replaceAll(",", ",,");
}

function checkSocketPath(
  path: string,
  task = "build qemu arguments",
): void {
  const length = new TextEncoder().encode(path).length;
  if (length > MAX_SOCKET_PATH) {
    throw new RangeError(
      `Cannot ${task}: QMP socket path ${path} is ${length} bytes, ` +
        `more than the ${MAX_SOCKET_PATH} a unix socket allows; use a shorter stateDir`,
    );
  }
}

function checkId(id: unknown, task = "build qemu arguments"): void {
  if (typeof id !== "string" || !ID.test(id)) {
    throw new TypeError(
      `Cannot ${task}: id must match ${ID}, got ${JSON.stringify(id)}`,
    );
  }
}

function checkSpec(spec: QemuSpec): void {
  if (typeof spec !== "object" || spec === null) {
    throw new TypeError("Cannot build qemu arguments: spec must be an object");
  }
  checkId(spec.id);
  if (
    typeof spec.name !== "string" || spec.name.length < 1 ||
    spec.name.length > 128 || CONTROL.test(spec.name)
  ) {
    throw new TypeError(
      `Cannot build qemu arguments: name must be 1 to 128 printable characters, got ${
        JSON.stringify(spec.name)
      }`,
    );
  }
  checkInteger("cpus", spec.cpus, 1, 64);
  checkInteger("memoryMiB", spec.memoryMiB, 64, 1_048_576);
  const boot = spec.boot as Record<string, unknown> | null;
  if (typeof boot !== "object" || boot === null) {
    throw new TypeError(
      "Cannot build qemu arguments: boot must be { kernel, initrd?, append? } or { disk }",
    );
  }
  if ("kernel" in boot === "disk" in boot) {
    throw new TypeError(
      "Cannot build qemu arguments: boot must have exactly one of kernel and disk",
    );
  }
  if ("kernel" in boot) {
    checkFile("boot.kernel", boot.kernel);
    if (boot.initrd !== undefined) checkFile("boot.initrd", boot.initrd);
    if (
      boot.append !== undefined &&
      (typeof boot.append !== "string" || CONTROL.test(boot.append))
    ) {
      throw new TypeError(
        "Cannot build qemu arguments: boot.append must be a string without control characters",
      );
    }
  } else {
    checkFile("boot.disk", boot.disk);
  }
}

function checkInteger(
  field: string,
  value: unknown,
  min: number,
  max: number,
): void {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot build qemu arguments: ${field} must be a number, got ${typeof value}`,
    );
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot build qemu arguments: ${field} must be an integer from ${min} to ${max}, got ${value}`,
    );
  }
}

/** qemu -daemonize changes to "/", so files must be given by absolute path. */
function checkFile(field: string, value: unknown): void {
  if (
    typeof value !== "string" || !value.startsWith("/") || CONTROL.test(value)
  ) {
    throw new TypeError(
      `Cannot build qemu arguments: ${field} must be an absolute path, got ${
        JSON.stringify(value)
      }`,
    );
  }
}
