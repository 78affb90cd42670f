/**
 * `vm.start` (target: the VM's host): boots the VM with the host's driver.
 * Safe to run twice: the driver's start re-attaches to a qemu that already
 * runs for this VM instead of starting a second one.
 *
 * Before any process starts, this incarnation owns the VM (phase starting,
 * `status.incarnation` = its lease, written comparing the VM's revision and
 * this host's `alive/` key: tasks/ownership.ts). The final `running` write
 * compares the revision of that write, so a VM evacuated or changed while
 * it booted is never overwritten: the handler runs again, finds the VM is
 * no longer this host's (or no longer to run), and kills the process it
 * started.
 *
 * The result has the pid, and for a moved VM (`payload.downSince`, from
 * `vm.move` through `vm.create`) `downtimeMs`: from the begin of its stop on
 * the old host to running here, by the wall clocks of the two hosts (for
 * an evacuated one, `payload.failover`: from its host's death); and
 * `fenced`: the disk's clients on other hosts it block-listed before the
 * process started (tasks/vm_disk.ts `fenceVmDisk`).
 */
import { PermanentError, type TaskHandler } from "./context.ts";
import { ownedBy, take } from "./ownership.ts";
import { forwardTo, readVm, statusTxn, vmIdOf } from "./vm_common.ts";
import { fenceVmDisk, vmBoot } from "./vm_disk.ts";

export const vmStart: TaskHandler = async (ctx) => {
  const read = await readVm(ctx);
  const host = read?.value.status.host;
  if (!read || host !== ctx.host) {
    // Not (or no longer) this host's: no process of it may stay here.
    const id = vmIdOf(ctx);
    if ((await ctx.driver.fence([id])).length) {
      ctx.log.warn("killed a process of a VM this host does not own", {
        vm: id,
        owner: host,
      });
    }
    if (!read) return { result: { skipped: "vm is gone" } };
    if (!host) return { result: { skipped: "vm is not placed" } };
    return forwardTo(ctx, host);
  }
  if (read.value.desired !== "running") {
    // Stopped or deleted while an earlier run of this task booted it: that
    // run's `running` write lost, so its process is in no handle and no
    // stop or delete would end it. A recorded handle is theirs to stop.
    if (!read.value.status.handle) {
      const killed = await ctx.driver.fence([read.value.id]);
      if (killed.length) {
        ctx.log.info("killed the process of a start that was overruled", {
          vm: read.value.id,
          desired: read.value.desired,
        });
      }
    }
    return { result: { skipped: `vm desired state is ${read.value.desired}` } };
  }
  const lease = ctx.worker.lease;
  const vm = read.value.status.phase === "starting" &&
      ownedBy(read.value, host, lease)
    ? read
    : await take(ctx.guard(), read, host, lease, { phase: "starting" });
  // Changed meanwhile, or this incarnation is no longer alive: decide again.
  if (!vm) throw new Error(`VM ${read.value.id} changed before it started`);
  await ctx.progress("resolving image");
  const boot = await vmBoot(ctx, vm.value);
  const nics = vm.value.nics.filter((n) => n.state === "attached");
  if (nics.length) {
    if (!ctx.net) {
      throw new PermanentError(
        `VM ${vm.value.id} has NICs but host ${ctx.host} runs without networking`,
      );
    }
    await ctx.progress("setting up network ports");
    await ctx.net.sync({ signal: ctx.signal, vm: vm.value.id });
  }
  // Right before the new process opens the disk (vm_disk.ts).
  const fenced = await fenceVmDisk(ctx, vm.value);
  await ctx.progress(`starting ${ctx.driver.name}`);
  const handle = await ctx.driver.start({
    id: vm.value.id,
    name: vm.value.spec.name,
    cpus: vm.value.spec.cpus,
    memoryMiB: vm.value.spec.memory,
    boot,
    nics: await Promise.all(nics.map(async (n) => {
      const tap = ctx.net!.port(vm.value.id, n);
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
  const down = Date.parse(String(ctx.task.payload.downSince));
  return {
    // A moved VM: down since its stop on the old host began (wall clocks).
    result: {
      pid: handle.pid,
      ...(fenced.length ? { fenced } : {}),
      ...(Number.isFinite(down) ? { downtimeMs: Date.now() - down } : {}),
    },
    // Compares the revision this start was decided on (the starting write).
    txn: statusTxn(ctx, vm, { phase: "running", handle, reason: undefined }),
  };
};
