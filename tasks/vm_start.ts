/**
 * `vm.start` (target: the VM's host): boots the VM with the host's driver.
 * Safe to run twice: the driver's start re-attaches to a qemu that already
 * runs for this VM instead of starting a second one.
 */
import { PermanentError, type TaskHandler } from "./context.ts";
import { forwardTo, readVm, statusTxn, writeStatus } from "./vm_common.ts";

export const vmStart: TaskHandler = async (ctx) => {
  let vm = await readVm(ctx);
  if (!vm) return { result: { skipped: "vm is gone" } };
  const host = vm.value.status.host;
  if (!host) return { result: { skipped: "vm is not placed" } };
  if (host !== ctx.host) return forwardTo(ctx, host);
  if (vm.value.desired !== "running") {
    return { result: { skipped: `vm desired state is ${vm.value.desired}` } };
  }
  if (vm.value.status.phase !== "starting") {
    vm = await writeStatus(ctx, vm, { phase: "starting" }) ?? vm;
  }
  await ctx.progress("resolving image");
  const boot = await ctx.images(vm.value.spec.image);
  const nics = vm.value.nics.filter((n) => n.state === "attached");
  if (nics.length) {
    if (!ctx.net) {
      throw new PermanentError(
        `VM ${vm.value.id} has NICs but host ${ctx.host} runs without networking`,
      );
    }
    await ctx.progress("setting up network ports");
    await ctx.net.sync({ signal: ctx.signal });
  }
  await ctx.progress(`starting ${ctx.driver.name}`);
  const handle = await ctx.driver.start({
    id: vm.value.id,
    name: vm.value.spec.name,
    cpus: vm.value.spec.cpus,
    memoryMiB: vm.value.spec.memory,
    boot,
    nics: await Promise.all(nics.map(async (n) => {
      const tap = ctx.net!.port(vm!.value.id, n.slot);
      const mtu = await ctx.net!.mtu(tap);
      return { slot: n.slot, tap, mac: n.mac, ...(mtu ? { mtu } : {}) };
    })),
  }, { signal: ctx.signal });
  const seen = await ctx.driver.inspect(handle);
  if (seen.state !== "running") {
    throw new Error(
      `VM ${vm.value.id} is ${seen.state} right after start${
        seen.detail ? `: ${seen.detail}` : ""
      }`,
    );
  }
  // Re-read: the VM may have changed while qemu started.
  const now = await readVm(ctx) ?? vm;
  return {
    result: { pid: handle.pid },
    txn: statusTxn(ctx, now, {
      phase: "running",
      handle,
      incarnation: ctx.worker.lease,
      reason: undefined,
    }),
  };
};
