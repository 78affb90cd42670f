/**
 * A VM's boot source and disk on the host that runs it. A VM made from an
 * image document (`imageRef`, core/image_schemas.ts) boots its own disk in
 * the image store: created at its first start on the stored image, sized to
 * `spec.disk` GiB, and kept across stops, restarts and moves (the store is
 * shared by the hosts, so a VM that fails over boots the same disk). Any
 * other VM boots what its host has installed (workers/images.ts).
 *
 * Storage fencing, the second fence under the lease: a store whose disks a
 * failed host could still write (RBD) block-lists every client of the disk
 * on another host before this host's qemu opens it ({@linkcode fenceVmDisk}),
 * so a host that missed its own deadline (its fencer stopped, its qemu
 * running on) cannot write the disk once the VM runs here.
 *
 * @example
 * ```ts
 * const boot = await vmBoot(ctx, vm.value); // { disk: ".../disks/vm-1.qcow2", format: "qcow2" }
 * ```
 */
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import type { Vm } from "../core/schemas.ts";
import { type Boot, PermanentError, type TaskContext } from "./context.ts";
import type { ImageStore } from "./image_store.ts";

function storeOf(ctx: TaskContext, vm: Vm): ImageStore {
  if (!ctx.imageStore) {
    throw new PermanentError(
      `VM ${vm.id} has a disk on image ${vm.imageRef}, but host ${ctx.host} has no image store (config images.store)`,
    );
  }
  return ctx.imageStore;
}

/** What VM `vm` boots on this host; creates its disk when it has none yet. */
export async function vmBoot(ctx: TaskContext, vm: Vm): Promise<Boot> {
  if (!vm.imageRef) return ctx.images(vm.spec.image);
  const store = storeOf(ctx, vm);
  const image = (await ctx.store.get(keys.image(vm.imageRef), Image))?.value;
  if (!image?.storedAs || image.state !== "ready") {
    throw new PermanentError(
      `Image ${vm.imageRef} of VM ${vm.id} is ${
        image ? `${image.state}, not ready` : "gone"
      }`,
    );
  }
  if (image.store !== store.kind) {
    throw new PermanentError(
      `Image ${vm.imageRef} is in the ${image.store} store; host ${ctx.host} has the ${store.kind} store`,
    );
  }
  const disk = await store.createDisk(vm.id, image.storedAs, vm.spec.disk, {
    signal: ctx.signal,
  });
  return { disk, format: store.diskFormat };
}

/** Removes VM `vm`'s disk from the image store (a VM without one: nothing). */
export async function removeVmDisk(ctx: TaskContext, vm: Vm): Promise<void> {
  if (!vm.imageRef) return;
  await storeOf(ctx, vm).removeDisk(vm.id, { signal: ctx.signal });
}

/**
 * The storage fence before VM `vm` boots here: when its disk's store has one
 * (RBD), every client of the disk on another host is block-listed; the
 * addresses are logged and set as the task's progress. Returns them (none
 * for a VM without a disk, a store without the fence, or a disk no other
 * host has open, e.g. after a clean stop or a move).
 */
export async function fenceVmDisk(ctx: TaskContext, vm: Vm): Promise<string[]> {
  if (!vm.imageRef) return [];
  const store = storeOf(ctx, vm);
  if (!store.fenceDisk) return [];
  await ctx.progress("fencing other hosts' clients of the disk");
  const fenced = await store.fenceDisk(vm.id);
  if (fenced.length) {
    ctx.log.warn("block-listed other hosts' clients of the VM's disk", {
      vm: vm.id,
      addresses: fenced,
    });
    await ctx.progress(`fenced the disk's clients ${fenced.join(", ")}`);
  }
  return fenced;
}
