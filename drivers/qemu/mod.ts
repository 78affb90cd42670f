/**
 * The qemu VM driver and its pure parts.
 *
 * @example
 * ```ts
 * import { QemuDriver } from "./drivers/qemu/mod.ts";
 * const driver = new QemuDriver({ stateDir: "/var/lib/ucloud", accel: "auto" });
 * ```
 *
 * @module
 */
export { detectAccel, type DetectAccelOptions } from "./accel.ts";
export { qemuArgs, type QemuSpec } from "./args.ts";
export {
  checkSlot,
  NIC_SLOTS,
  nicId,
  type NicOptions,
  nicOptions,
  type QemuNic,
} from "./nic_options.ts";
export { type VmPaths, vmPaths } from "./vm_paths.ts";
export { QemuDriver, type QemuDriverOptions } from "./driver.ts";
export type { QemuHandle } from "./handle.ts";
export type { QemuState } from "./status.ts";
export type { RebootOptions, RebootResult } from "./reboot.ts";
export type { StopOptions, StopResult } from "./stop.ts";
export {
  type QmpCallOptions,
  QmpClient,
  QmpError,
  type QmpEvent,
  queryStatus,
} from "./qmp.ts";
