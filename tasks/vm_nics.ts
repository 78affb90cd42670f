/**
 * `vm.nics` (target: the VM's host): brings a running VM's NICs in line
 * with its document. NICs `attached` but not in the VM are hot-plugged
 * (after the host's ports and firewall rules exist for them); NICs
 * `detaching` are hot-unplugged, then dropped from the document with their
 * addresses released, in the completion transaction. A VM that does not
 * run only has its detaching NICs dropped: the next start cold-plugs the
 * rest. Safe to run twice: plugging a present NIC or unplugging an absent
 * one does nothing.
 */
import { releaseNics } from "../resources/networks/nics.ts";
import { PermanentError, type TaskHandler } from "./context.ts";
import { forwardTo, readVm } from "./vm_common.ts";

const LIVE = new Set(["running", "paused"]);

export const vmNics: TaskHandler = async (ctx) => {
  const vm = await readVm(ctx);
  if (!vm) return { result: { skipped: "vm is gone" } };
  const id = vm.value.id;
  const host = vm.value.status.host;
  if (host && host !== ctx.host) return forwardTo(ctx, host);
  const attached = vm.value.nics.filter((n) => n.state === "attached");
  const detaching = vm.value.nics.filter((n) => n.state === "detaching");
  const handle = vm.value.status.handle;
  const plugged: number[] = [];
  const unplugged: number[] = [];
  if (host && handle && LIVE.has((await ctx.driver.inspect(handle)).state)) {
    if (!ctx.net) {
      throw new PermanentError(
        `Cannot change NICs of VM ${id}: host ${ctx.host} runs without networking`,
      );
    }
    await ctx.progress("setting up network ports");
    await ctx.net.sync({ signal: ctx.signal, vm: id });
    const present = new Set(await ctx.driver.listNics(handle));
    for (const nic of attached) {
      if (present.has(nic.slot)) continue;
      await ctx.progress(`plugging NIC ${nic.slot} (${nic.network})`);
      const tap = ctx.net.port(id, nic);
      const mtu = await ctx.net.mtu(tap);
      await ctx.driver.plugNic(handle, {
        slot: nic.slot,
        tap,
        mac: nic.mac,
        ...(mtu ? { mtu } : {}),
      }, { signal: ctx.signal });
      plugged.push(nic.slot);
    }
    for (const nic of detaching) {
      if (!present.has(nic.slot)) continue;
      await ctx.progress(`unplugging NIC ${nic.slot} (${nic.network})`);
      await ctx.driver.unplugNic(handle, nic.slot, { signal: ctx.signal });
      unplugged.push(nic.slot);
    }
  }
  const result = { plugged, unplugged, dropped: detaching.map((n) => n.slot) };
  if (!detaching.length) return { result };
  const txn = ctx.guard().ifModRevision(vm.key, vm.modRevision).put(vm.key, {
    ...vm.value,
    nics: attached,
  });
  await releaseNics(ctx.store, txn, id, detaching, attached);
  return { result, txn };
};
