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
  /** NICs present from boot (cold-plugged), at most one per slot. */
  nics?: QemuNic[];
}

/**
 * A virtio NIC on an existing host tap device. Slot N sits on its own PCIe
 * root port `hpN` (so it can be hot-plugged and unplugged); its netdev and
 * device are both named `nicN`.
 */
export interface QemuNic {
  /** 0 to {@linkcode NIC_SLOTS} - 1. */
  slot: number;
  /** Host tap name, 1 to 15 characters of `[a-z0-9-]`. */
  tap: string;
  /** Unicast MAC, `xx:xx:xx:xx:xx:xx` in hex. */
  mac: string;
  /**
   * MTU the guest is told (virtio `host_mtu`, 576 to 65535), e.g. the
   * network's: a VXLAN network has less than 1500. Absent: the default.
   */
  mtu?: number;
}

/** Files of one VM under the state directory. */
export interface VmPaths {
  dir: string;
  pidfile: string;
  qmp: string;
  /** Unix socket of the serial console (one client at a time). */
  console: string;
  /** Everything the guest wrote to its serial console. */
  serial: string;
}

/** NIC slots (PCIe root ports `hp0`..`hp7`) every VM has. */
export const NIC_SLOTS = 8;

/** Largest unix socket path: sun_path is 108 bytes with the final NUL. */
const MAX_SOCKET_PATH = 107;
const ID = /^[a-z0-9-]{1,64}$/;
const TAP = /^[a-z0-9-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * The files of VM `id`:
 * `<stateDir>/vms/<id>/{qemu.pid,qmp.sock,console.sock,serial.log}`.
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
    serial: `${dir}/serial.log`,
  };
  checkSocketPath("QMP", paths.qmp, "build VM paths");
  checkSocketPath("console", paths.console, "build VM paths");
  return paths;
}

/**
 * Builds the arguments of a daemonized qemu-system-x86_64 for `spec`: q35,
 * no default devices, no display, QMP on `paths.qmp`, the serial console
 * served on the socket `paths.console` and appended to `paths.serial`
 * (O_APPEND, so serial_log.ts can rotate it in place),
 * `-pidfile` (by which the driver recognises its processes), the
 * {@linkcode NIC_SLOTS} PCIe root ports for NICs and the NICs of
 * `spec.nics`. Throws TypeError or RangeError naming the bad field.
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
  for (const key of ["pidfile", "qmp", "console", "serial"] as const) {
    checkFile(`paths.${key}`, paths?.[key]);
  }
  checkSocketPath("QMP", paths.qmp);
  checkSocketPath("console", paths.console);
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
    `socket,id=serial0,path=${opt(paths.console)},server=on,wait=off,` +
    `logfile=${opt(paths.serial)},logappend=on`,
    "-serial",
    "chardev:serial0",
  ];
  for (let slot = 0; slot < NIC_SLOTS; slot++) {
    args.push(
      "-device",
      `pcie-root-port,id=${portId(slot)},chassis=${slot + 1},slot=${
        slot + 1
      },bus=pcie.0`,
    );
  }
  for (const nic of spec.nics ?? []) {
    const { netdev, device } = nicOptions(nic);
    const { type, ...rest } = netdev;
    args.push("-netdev", optionList(type, rest));
    const { driver, ...props } = device;
    args.push("-device", optionList(driver, props));
  }
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

/** QMP arguments of `netdev_add` and `device_add` for one NIC. */
export interface NicOptions {
  netdev: {
    type: "tap";
    id: string;
    ifname: string;
    script: "no";
    downscript: "no";
  };
  device: {
    driver: "virtio-net-pci";
    id: string;
    netdev: string;
    mac: string;
    bus: string;
    /** Device 0 of the port's bus: the only one a guest scans there. */
    addr: "0";
    /** The MTU the guest uses (a number: QMP wants one). */
    host_mtu?: number;
  };
}

/**
 * The netdev and device of `nic`, as QMP `netdev_add` / `device_add`
 * arguments (the command line uses the same values). Throws TypeError or
 * RangeError naming the bad field of `nic` (as `field`, default "nic").
 *
 * @example
 * ```ts
 * const { netdev, device } = nicOptions({ slot: 1, tap: "t1", mac: "52:54:00:00:00:01" });
 * await qmp.execute("netdev_add", netdev);
 * await qmp.execute("device_add", device);
 * ```
 */
export function nicOptions(
  nic: QemuNic,
  field = "nic",
  task = "use NIC",
): NicOptions {
  checkNic(nic, field, task);
  const id = nicId(nic.slot);
  return {
    netdev: {
      type: "tap",
      id,
      ifname: nic.tap,
      script: "no",
      downscript: "no",
    },
    device: {
      driver: "virtio-net-pci",
      id,
      netdev: id,
      mac: nic.mac.toLowerCase(),
      bus: portId(nic.slot),
      addr: "0",
      ...(nic.mtu !== undefined ? { host_mtu: nic.mtu } : {}),
    },
  };
}

/** The netdev and device id of the NIC in `slot`: `nic<slot>`. */
export function nicId(slot: number): string {
  checkSlot(slot);
  return `nic${slot}`;
}

/** The PCIe root port of `slot`: `hp<slot>`. */
function portId(slot: number): string {
  return `hp${slot}`;
}

/**
 * Throws TypeError or RangeError "Cannot <task>: <field> must be ..."
 * unless `slot` is an integer from 0 to {@linkcode NIC_SLOTS} - 1.
 *
 * @example
 * ```ts
 * checkSlot(8); // RangeError: Cannot use NIC: slot must be an integer from 0 to 7, got 8
 * ```
 */
export function checkSlot(
  slot: unknown,
  field = "slot",
  task = "use NIC",
): void {
  if (typeof slot !== "number") {
    throw new TypeError(
      `Cannot ${task}: ${field} must be a number, got ${typeof slot}`,
    );
  }
  if (!Number.isInteger(slot) || slot < 0 || slot >= NIC_SLOTS) {
    throw new RangeError(
      `Cannot ${task}: ${field} must be an integer from 0 to ${
        NIC_SLOTS - 1
      }, got ${slot}`,
    );
  }
}

function checkNic(nic: QemuNic, field: string, task: string): void {
  if (typeof nic !== "object" || nic === null) {
    throw new TypeError(
      `Cannot ${task}: ${field} must be an object { slot, tap, mac }`,
    );
  }
  checkSlot(nic.slot, `${field}.slot`, task);
  if (typeof nic.tap !== "string" || !TAP.test(nic.tap)) {
    throw new TypeError(
      `Cannot ${task}: ${field}.tap must be 1 to 15 characters of [a-z0-9-], got ${
        JSON.stringify(nic.tap)
      }`,
    );
  }
  if (typeof nic.mac !== "string" || !MAC.test(nic.mac)) {
    throw new TypeError(
      `Cannot ${task}: ${field}.mac must look like 52:54:00:12:34:56, got ${
        JSON.stringify(nic.mac)
      }`,
    );
  }
  if (parseInt(nic.mac.slice(0, 2), 16) & 1) {
    throw new TypeError(
      `Cannot ${task}: ${field}.mac must be a unicast MAC, got ${nic.mac}`,
    );
  }
  if (
    nic.mtu !== undefined &&
    (!Number.isInteger(nic.mtu) || nic.mtu < 576 || nic.mtu > 65_535)
  ) {
    throw new RangeError(
      `Cannot ${task}: ${field}.mtu must be an integer from 576 to 65535, got ${nic.mtu}`,
    );
  }
}

/** `name,key=value,...` with the values escaped. */
function optionList(
  name: string,
  props: Record<string, string | number>,
): string {
  return [
    name,
    ...Object.entries(props).map(([k, v]) => `${k}=${opt(String(v))}`),
  ].join(",");
}

/** Escapes a value inside a qemu `key=value,...` option list. */
function opt(value: string): string {
  return value.replaceAll(",", ",,");
}

function checkSocketPath(
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
  checkNics(spec.nics);
}

function checkNics(nics: unknown): void {
  if (nics === undefined) return;
  if (!Array.isArray(nics)) {
    throw new TypeError("Cannot build qemu arguments: nics must be an array");
  }
  const slots = new Set<number>();
  nics.forEach((nic, i) => {
    checkNic(nic, `nics[${i}]`, "build qemu arguments");
    if (slots.has(nic.slot)) {
      throw new RangeError(
        `Cannot build qemu arguments: nics[${i}].slot ${nic.slot} is already used by another NIC`,
      );
    }
    slots.add(nic.slot);
  });
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
