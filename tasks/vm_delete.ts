/**
 * `vm.delete` (target: the VM's host, or `any` when it was never placed):
 * stops the process (the hard stop: the VM and its disk go, so a guest
 * shutdown would protect nothing), removes its files, then deletes the VM
 * document, its user data and its owner index entry
 * (resources/vms/owner_index.ts) and releases its reservation and its NICs'
 * addresses in one transaction, which also gives its cores, memory and
 * disk back to its owner's usage (resources/quotas/usage.ts, comparing
 * that document's revision). Other deletes contend on that document and
 * on the host's reservation sums: while the VM document is unchanged,
 * just the final transaction is rebuilt and tried again
 * (tasks/outcome.ts), not the whole handler. A VM
 * made from an image document loses its disk in the image store
 * (tasks/vm_disk.ts) before its document goes.
 */
import { keys } from "../core/keys.ts";
import { NO_USAGE } from "../core/quota_schemas.ts";
import { releaseNics } from "../resources/networks/nics.ts";
import { unindexOwner } from "../resources/vms/owner_index.ts";
import type { Txn } from "../core/store.ts";
import {
  changeUsage,
  readUsage,
  type UsageRead,
  vmAmounts,
} from "../resources/quotas/usage.ts";
import type { TaskHandler } from "./context.ts";
import { forwardTo, readVm, releaseAlloc } from "./vm_common.ts";
import { removeVmDisk } from "./vm_disk.ts";

export const vmDelete: TaskHandler = async (ctx) => {
  const vm = await readVm(ctx);
  if (!vm) return { result: { skipped: "vm is gone" } };
  const host = vm.value.status.host;
  if (host && host !== ctx.host) return forwardTo(ctx, host);
  const id = vm.value.id;
  if (host) {
    const handle = vm.value.status.handle;
    if (handle) {
      await ctx.progress(`stopping ${ctx.driver.name}`);
      await ctx.driver.stop(handle, { signal: ctx.signal, force: true });
    }
    await ctx.progress("removing files");
    await ctx.driver.destroy(id);
  }
  // Before the document goes: an image is deletable once no VM names it.
  await removeVmDisk(ctx, vm.value);
  const final = async (): Promise<{ txn: Txn; usage: UsageRead }> => {
    const txn = unindexOwner(
      ctx.guard().ifModRevision(vm.key, vm.modRevision)
        .delete(vm.key).delete(keys.userData(id)),
      vm.value,
    );
    if (host) await releaseAlloc(ctx, txn, host, id);
    await releaseNics(ctx.store, txn, id, vm.value.nics);
    const usage = await readUsage(ctx.store, vm.value.owner);
    changeUsage(txn, usage, NO_USAGE, vmAmounts(vm.value.spec));
    return { txn, usage };
  };
  let last = await final();
  // Other deletes contend on the owner's usage and the host's reservation
  // sums: while the VM is as read, only the final transaction is rebuilt
  // from fresh reads (every compare kept).
  const again = async () => {
    if ((await readVm(ctx))?.modRevision !== vm.modRevision) return null;
    last = await final();
    return last.txn;
  };
  return { result: { deleted: id }, txn: last.txn, again };
};
