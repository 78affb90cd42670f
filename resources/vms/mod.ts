/**
 * The VM resource: create (create.ts, with idempotency.ts), start, stop,
 * reboot and delete (lifecycle.ts), attach and detach NICs (nics.ts),
 * reading VMs as a caller may (view.ts) and their metadata (metadata.ts).
 * Each change is one transaction comparing what it read, with the task
 * that carries it out. Imports only
 * core/, scheduler/ and resources/; the API (api/vms.ts) calls it, a web
 * page or a cron job can too.
 *
 * @example
 * ```ts
 * import { createVm, stopVm } from "../resources/vms/mod.ts";
 * const { vm } = await createVm({ store, config }, who, input);
 * await stopVm({ store, config }, who, vm.id, { force: true });
 * ```
 */
export { type VmChange } from "./change.ts";
export { type Created, createVm } from "./create.ts";
export {
  deleteVm,
  type PowerOptions,
  rebootVm,
  startVm,
  stopVm,
} from "./lifecycle.ts";
export { readUserData, type VmMetadata, vmMetadata } from "./metadata.ts";
export { attachNic, detachNic } from "./nics.ts";
export { listVms, readVm, showVm } from "./view.ts";
