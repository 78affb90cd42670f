/**
 * Pure building of a qemu-system-x86_64 command line; no I/O. The VM's
 * files come from vm_paths.ts, its NICs' options from nic_options.ts.
 *
 * @module
 */
import {
  checkNic,
  NIC_SLOTS,
  nicOptions,
  portId,
  type QemuNic,
} from "./nic_options.ts";
import { METADATA } from "../net/host_input.ts";
import type { DiskCache } from "./disk_cache.ts";
import { checkId, checkSocketPath, type VmPaths } from "./vm_paths.ts";

/** Host-side options of {@linkcode qemuArgs}. */
export interface QemuArgsOptions {
  /**
   * The `cache=` of a boot disk: "none" (O_DIRECT, the default) or
   * "writeback" where the disk's filesystem has no O_DIRECT (disk_cache.ts).
   */
  diskCache?: DiskCache;
  /**
   * The SMBIOS system serial (`-smbios type=1,serial=...`, the guest's
   * `/sys/class/dmi/id/product_serial`), e.g. {@linkcode NOCLOUD_SERIAL};
   * 1 to 255 printable ASCII characters. Absent: qemu's default (none).
   */
  smbiosSerial?: string;
  /**
   * The unprivileged user qemu switches to once it has opened its files,
   * sockets and taps (`-runas`), e.g. {@linkcode QEMU_USER}. Absent: qemu
   * stays root (only for tests of the argument building).
   */
  user?: string;
}

/** The system user VMs run as (created by scripts/install.sh or qemu_user.ts). */
export const QEMU_USER = "ucloud-qemu";

/**
 * qemu's seccomp filter: obsolete system calls, spawning processes (fork,
 * exec) and changing priorities, affinities and limits are denied. Not
 * `elevateprivileges=deny`: qemu 7.2 installs the filter before `-runas`
 * calls setgid/setuid, so it would kill itself (SIGSYS, measured); after
 * `-runas` qemu has no capabilities and `no_new_privs`, so it cannot gain
 * privileges anyway. Not `-daemonize` either: its fork is a spawn
 * (launch.ts detaches qemu instead).
 */
export const SANDBOX = "on,obsolete=deny,spawn=deny,resourcecontrol=deny";

const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * The SMBIOS serial that points cloud-init's NoCloud datasource at the
 * metadata service's seed (`ds=nocloud-net;s=<url>`: the form cloud-init
 * 22.4 of Debian 12 reads; its ds-identify enables NoCloud on it).
 */
export const NOCLOUD_SERIAL = `ds=nocloud-net;s=http://[${
  METADATA.ipv6[1]
}]/nocloud/`;

const SMBIOS_STRING = /^[\x20-\x7e]{1,255}$/;

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
  /**
   * Boot a kernel directly, or from a disk through the firmware: a file
   * (absolute path) or an RBD disk (`rbd:<pool>/<image>:...`, librbd), in
   * the format named (qcow2 or raw).
   */
  boot: { kernel: string; initrd?: string; append?: string } | {
    disk: string;
    format: "qcow2" | "raw";
  };
  /** NICs present from boot (cold-plugged), at most one per slot. */
  nics?: QemuNic[];
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
/** `rbd:<pool>/<image>` and `:key=value` options (drivers/images/rbd.ts). */
const RBD_DISK =
  /^rbd:[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*(:[a-z_]+=[^:@\\\s]+)*$/;

/**
 * Builds the arguments of a qemu-system-x86_64 for `spec` (run detached by
 * launch.ts): q35, no default devices but a std VGA whose screen is served
 * by VNC on the unix socket `paths.vnc` (no local display), qemu's seccomp
 * {@linkcode SANDBOX}, `-runas opts.user`, QMP on `paths.qmp`, the serial console
 * served on the socket `paths.console` and appended to `paths.serial`
 * (O_APPEND, so serial_log.ts can rotate it in place),
 * `-pidfile` (by which the driver recognises its processes), the
 * {@linkcode NIC_SLOTS} PCIe root ports for NICs and the NICs of
 * `spec.nics`. A boot disk is a virtio-blk device whose format (qcow2 or
 * raw) is always named (never probed: a probed format lets a guest that
 * writes a qcow2 header into a raw disk read host files through its backing
 * file), opened with `opts.diskCache`; `opts.smbiosSerial` sets the
 * SMBIOS system serial. Throws TypeError or RangeError naming the bad
 * field.
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
  { diskCache = "none", smbiosSerial, user }: QemuArgsOptions = {},
): string[] {
  checkSpec(spec);
  for (const key of ["pidfile", "qmp", "console", "vnc", "serial"] as const) {
    checkFile(`paths.${key}`, paths?.[key]);
  }
  checkSocketPath("QMP", paths.qmp);
  checkSocketPath("console", paths.console);
  checkSocketPath("VNC", paths.vnc);
  if (accel !== "kvm" && accel !== "tcg") {
    throw new TypeError(
      `Cannot build qemu arguments: accel must be "kvm" or "tcg", got ${
        JSON.stringify(accel)
      }`,
    );
  }
  if (diskCache !== "none" && diskCache !== "writeback") {
    throw new TypeError(
      `Cannot build qemu arguments: diskCache must be "none" or "writeback", got ${
        JSON.stringify(diskCache)
      }`,
    );
  }
  if (
    smbiosSerial !== undefined &&
    (typeof smbiosSerial !== "string" || !SMBIOS_STRING.test(smbiosSerial))
  ) {
    throw new TypeError(
      `Cannot build qemu arguments: smbiosSerial must be 1 to 255 printable ASCII characters, got ${
        JSON.stringify(smbiosSerial)
      }`,
    );
  }
  if (user !== undefined && (typeof user !== "string" || !USER.test(user))) {
    throw new TypeError(
      `Cannot build qemu arguments: user must match ${USER}, got ${
        JSON.stringify(user)
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
    // The VGA screen, served only on the VM's own VNC unix socket (no TCP
    // port, no password: see vm_paths.ts); qemu opens it before -runas.
    "-vga",
    "std",
    "-vnc",
    `unix:${opt(paths.vnc)}`,
    "-no-shutdown",
    "-sandbox",
    SANDBOX,
    ...(user === undefined ? [] : ["-runas", user]),
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
  if (smbiosSerial !== undefined) {
    args.push("-smbios", `type=1,serial=${opt(smbiosSerial)}`);
  }
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
      `file=${opt(spec.boot.disk)},format=${spec.boot.format},if=none,` +
        `id=disk0,` +
        `cache=${diskCache}`,
      "-device",
      "virtio-blk-pci,drive=disk0,bootindex=0",
    );
  }
  return args;
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
      "Cannot build qemu arguments: boot must be { kernel, initrd?, append? } or { disk, format }",
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
    checkDisk(boot.disk, boot.format);
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

/** qemu runs in "/" (launch.ts), so files must be given by absolute path. */
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

/** A disk is a file (absolute path) or an RBD name, of a named format. */
function checkDisk(disk: unknown, format: unknown): void {
  if (format !== "qcow2" && format !== "raw") {
    throw new TypeError(
      `Cannot build qemu arguments: boot.format must be "qcow2" or "raw", got ${
        JSON.stringify(format)
      }`,
    );
  }
  if (typeof disk === "string" && disk.startsWith("rbd:")) {
    if (!RBD_DISK.test(disk) || CONTROL.test(disk)) {
      throw new TypeError(
        `Cannot build qemu arguments: boot.disk must be rbd:<pool>/<image>[:key=value...], got ${
          JSON.stringify(disk)
        }`,
      );
    }
    return;
  }
  checkFile("boot.disk", disk);
}
