/**
 * `vm.reboot` (target: the VM's host): reboots the running VM in place,
 * same process: the guest's own reboot (ctrl-alt-delete for qemu), given
 * `payload.timeoutSeconds` (default `worker.stopTimeoutSeconds`), then a
 * hard reset; `payload.force`: the reset at once. The VM stays `running`
 * throughout; nothing in its document changes. The result says how:
 * `{ rebooted: true, how: "reboot" | "forced", ms }`. A VM that does not
 * run (or no longer should) is skipped, not started.
 */
import type { TaskHandler } from "./context.ts";
import { stopOptions } from "./stop_options.ts";
import { forwardTo, readVm } from "./vm_common.ts";

export const vmReboot: TaskHandler = async (ctx) => {
  const vm = await readVm(ctx);
  if (!vm) return { result: { skipped: "vm is gone" } };
  const { host, phase, handle } = vm.value.status;
  if (host && host !== ctx.host) return forwardTo(ctx, host);
  if (vm.value.desired !== "running" || phase !== "running" || !handle) {
    return {
      result: {
        skipped: `vm is ${phase} (desired ${vm.value.desired}), not running`,
      },
    };
  }
  const opts = stopOptions(ctx);
  await ctx.progress(
    opts.force
      ? `resetting ${ctx.driver.name} (forced)`
      : `rebooting the guest (up to ${opts.timeoutMs / 1000}s, then a reset)`,
  );
  const { how, ms } = await ctx.driver.reboot(handle, opts);
  ctx.log.info("VM rebooted", { vm: vm.value.id, how, ms });
  return { result: { rebooted: true, how, ms } };
};
