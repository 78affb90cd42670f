/**
 * `vm.stop` (target: the VM's host): stops the VM's process. Already
 * stopped counts as done.
 */
import type { TaskHandler } from "./context.ts";
import { forwardTo, readVm, statusTxn } from "./vm_common.ts";

export const vmStop: TaskHandler = async (ctx) => {
  const vm = await readVm(ctx);
  if (!vm) return { result: { skipped: "vm is gone" } };
  const host = vm.value.status.host;
  if (host && host !== ctx.host) return forwardTo(ctx, host);
  if (vm.value.desired === "running") {
    return { result: { skipped: "vm desired state is running" } };
  }
  const handle = vm.value.status.handle;
  if (handle) {
    await ctx.progress(`stopping ${ctx.driver.name}`);
    await ctx.driver.stop(handle, { signal: ctx.signal });
  }
  return {
    result: { stopped: Boolean(handle) },
    // Compares the revision the stop was decided on: a VM changed meanwhile
    // (evacuated, started again) is decided again, never overwritten. The
    // owner stays: a stopped VM keeps its host and its disk there.
    txn: statusTxn(ctx, vm, {
      phase: vm.value.desired === "deleted" ? "deleting" : "stopped",
      handle: undefined,
      reason: undefined,
    }),
  };
};
