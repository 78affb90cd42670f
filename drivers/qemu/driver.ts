/**
 * The qemu VM driver: start, re-adopt, inspect, stop, reboot, hot-plug NICs
 * and remove detached qemu-system-x86_64 processes, one directory per VM
 * under the state dir. Launching is in launch.ts, state in status.ts, the
 * handle in handle.ts.
 *
 * @module
 */
import { resolve } from "node:path";
import { ownsPidfile, processArgs, readPidfile } from "./_proc.ts";
import { detectAccel } from "./accel.ts";
import { NOCLOUD_SERIAL, QEMU_USER, qemuArgs, type QemuSpec } from "./args.ts";
import { diskCacheMode } from "./disk_cache.ts";
import { checkHandle, type QemuHandle, vmId } from "./handle.ts";
import { adoptQemu, launchQemu, removeFiles } from "./launch.ts";
import { checkSlot, type QemuNic } from "./nic_options.ts";
import { ensureQemuUser, type UserIds } from "./qemu_user.ts";
import { listNicSlots, plugNicInto, unplugNicFrom } from "./nics.ts";
import { type RebootOptions, rebootQemu, type RebootResult } from "./reboot.ts";
import { inspectQemu, type QemuState, recoverQemu } from "./status.ts";
import { alive, type StopOptions, stopQemu, type StopResult } from "./stop.ts";
import { vmPaths } from "./vm_paths.ts";

/** Options of the {@linkcode QemuDriver} constructor. */
export interface QemuDriverOptions {
  /** VMs live in `<stateDir>/vms/<id>/`. */
  stateDir: string;
  /** Accelerator mode, see {@linkcode detectAccel}. Default "auto". */
  accel?: "kvm" | "tcg" | "auto";
  /** Default "qemu-system-x86_64". */
  qemuBinary?: string;
  /**
   * Every VM's SMBIOS system serial; null: none. Default
   * {@linkcode NOCLOUD_SERIAL} (cloud-init's NoCloud seed on the metadata
   * service).
   */
  smbiosSerial?: string | null;
  /**
   * The system user every qemu switches to once it opened its files
   * (`-runas`); created when missing (qemu_user.ts). Default
   * {@linkcode QEMU_USER}.
   */
  user?: string;
}

/**
 * Runs VMs as detached qemu processes, sandboxed (seccomp) and as an
 * unprivileged user (args.ts, launch.ts). Processes are recognised by their
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
  #smbiosSerial: string | undefined;
  #user: string;
  #userReady?: Promise<UserIds>;
  #locks = new Map<string, Promise<unknown>>();

  constructor(
    {
      stateDir,
      accel = "auto",
      qemuBinary = "qemu-system-x86_64",
      smbiosSerial = NOCLOUD_SERIAL,
      user = QEMU_USER,
    }: QemuDriverOptions,
  ) {
    this.stateDir = resolve(stateDir);
    this.#accelMode = accel;
    this.#qemuBinary = qemuBinary;
    this.#smbiosSerial = smbiosSerial ?? undefined;
    this.#user = user;
  }

  /**
   * Starts the VM and resolves once QMP answers. Idempotent: when the VM's
   * pidfile names a live qemu of this VM, resolves with a handle to it. A
   * boot disk is opened with `cache=none` where its filesystem takes
   * O_DIRECT, else `cache=writeback` (disk_cache.ts).
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
      const smbiosSerial = this.#smbiosSerial;
      const user = this.#user;
      const args = qemuArgs(spec, paths, accel, { smbiosSerial, user }); // checks the spec

      const running = await adoptQemu(spec.id, paths, signal);
      if (running) return running;
      this.#userReady ??= ensureQemuUser(user, signal).catch((err) => {
        this.#userReady = undefined;
        throw err;
      });
      const { uid } = await this.#userReady;
      return await launchQemu({
        binary: this.#qemuBinary,
        id: spec.id,
        args: "disk" in spec.boot
          ? qemuArgs(spec, paths, accel, {
            diskCache: await diskCacheMode(spec.boot.disk, signal),
            smbiosSerial,
            user,
          })
          : args,
        uid,
        paths,
        accel,
        signal,
      });
    });
  }

  /**
   * Re-adopts a VM from its stored handle: resolves with the handle when its
   * pid is alive, is the qemu of this VM, and QMP answers; otherwise null.
   */
  recover(handle: QemuHandle): Promise<QemuHandle | null> {
    return recoverQemu(handle);
  }

  /** Reports the VM's state; "gone" when its process is dead. */
  inspect(handle: QemuHandle): Promise<QemuState> {
    return inspectQemu(handle);
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
    if (handle.vnc !== undefined) await removeFiles(handle.vnc);
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
}
