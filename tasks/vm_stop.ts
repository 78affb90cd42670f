/**
 * `vm.stop` (target: the VM's host): stops the VM's process. The guest
 * gets `payload.timeoutSeconds` (default `worker.stopTimeoutSeconds`) to
 * shut down by itself (ACPI power button), then the hard stop comes;
 * `payload.force`: the hard stop at once. The result says how:
 * `{ stopped: true, how: "shutdown" | "forced" | "gone", ms }`. Already
 * stopped counts as done (`{ stopped: false }`). `payload.reason` (e.g. the
 * guest powered itself off, workers/guest_poweroff.ts) stays the stopped
 * VM's reason.
 */
import type { TaskHandler } from "./context.ts";
import { stopOptions } from "./stop_options.ts";
import { forwardTo, readVm, statusTxn } from "./vm_common.ts";

export const vmStop: TaskHandler = async (ctx) => {
  const vm = await readVm(ctx);
  if (!vm) return { result: { skipped: "vm is gone" } };
  const host = vm.value.status.host;
  if (host && host !== ctx.host) return forwardTo(ctx, host);
  if (vm.value.desired === "running") {
    return { result: { skipped: "vm desired state is running" } };
  }
  const opts = stopOptions(ctx);
  const handle = vm.value.status.handle;
  let result: Record<string, unknown> = { stopped: false };
  if (handle) {
    await ctx.progress(
      opts.force
        ? `stopping ${ctx.driver.name} (forced)`
        : `shutting the guest down (up to ${opts.timeoutMs / 1000}s)`,
    );
    const { how, ms } = await ctx.driver.stop(handle, opts);
    ctx.log.info("VM stopped", { vm: vm.value.id, how, ms });
    result = { stopped: true, how, ms };
  }
  return {
    result,
    // Compares the revision the stop was decided on: a VM changed meanwhile
    // (evacuated, started again) is decided again, never overwritten. The
    // owner stays: a stopped VM keeps its host and its disk there.
    txn: statusTxn(ctx, vm, {
      phase: vm.value.desired === "deleted" ? "deleting" : "stopped",
      handle: undefined,
      // Why it stopped, when not asked through the API (a guest power-off).
      reason: typeof ctx.task.payload.reason === "string"
        ? ctx.task.payload.reason
        : undefined,
    }),
  };
};
