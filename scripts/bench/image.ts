/**
 * Bench phase `image`, three parts in one run:
 *
 * - import throughput, `FileStore.importImage` against `qemu-img convert`
 *   and `cp` of the same qcow2 (image_import.ts);
 * - VM create from an image: the disk guest uploaded through the API and
 *   imported by one real worker into a file store, then VMs made from it
 *   (each its own overlay disk) timed from `POST /v1/vms` to QMP running
 *   and to the guest marker, alternating with no-disk VMs (the tiny kernel
 *   guest) on the same worker; each VM is deleted before the next starts
 *   (image_cluster.ts);
 * - the same for the RBD store on a one-node Ceph, with its import against
 *   `qemu-img convert` into the pool (image_rbd.ts; skipped under --quick).
 */
import { ensureDiskGuest } from "../../tests/helpers/disk_guest.ts";
import type { Options } from "./options.ts";
import { type Cleanup, progress, type Row } from "./util.ts";
import {
  compareVms,
  startImageCluster,
  uploadImage,
  type VmComparison,
} from "./image_cluster.ts";
import { benchImport, type ImportResult, importRows } from "./image_import.ts";
import { benchRbd, type RbdResult, rbdRows } from "./image_rbd.ts";

/** VM create from a file-store image against no disk, same worker. */
export interface ImageVmResult extends VmComparison {
  /** Upload of the disk guest through the API until the image is ready. */
  uploadToReadyMs: number;
}

/** Result of {@linkcode benchImage}. */
export interface ImageResult {
  import: ImportResult;
  vm: ImageVmResult;
  rbd: RbdResult;
}

async function benchImageVms(
  opts: Options,
  cleanup: Cleanup,
): Promise<ImageVmResult> {
  const guest = await ensureDiskGuest();
  progress("image: starting etcd and a worker with a file store");
  const c = await startImageCluster(cleanup, "bench-img");
  progress("image: uploading the disk guest and importing it");
  const { uploadToReadyMs } = await uploadImage(c, "benchdisk", guest);
  const vms = await compareVms(opts, c, "benchdisk", "image");
  await c.stop();
  return { ...vms, uploadToReadyMs };
}

/**
 * Runs the image phase: import throughput, VM create from a file-store
 * image, then the RBD part (its own Ceph and cluster).
 */
export async function benchImage(
  opts: Options,
  cleanup: Cleanup,
): Promise<ImageResult> {
  const imp = await benchImport(opts.importMiB, opts.importRounds, cleanup);
  await cleanup.run();
  const vm = await benchImageVms(opts, cleanup);
  await cleanup.run();
  const rbd = await benchRbd(opts, cleanup);
  await cleanup.run();
  return { import: imp, vm, rbd };
}

/** Rows of the bench table. */
export function imageRows(r: ImageResult): Row[] {
  const vm = r.vm;
  const n = `n=${vm.count}, 1 CPU 128 MiB, TCG, same worker`;
  return [
    ...importRows(r.import),
    {
      name: "image upload -> ready",
      value: vm.uploadToReadyMs,
      unit: "ms",
      notes: "disk guest via PUT upload + import task",
    },
    {
      name: "VM from image -> QMP running p50",
      value: vm.diskQmpRunningMs.p50,
      unit: "ms",
      notes: `file store, own overlay disk; ${n}`,
    },
    {
      name: "VM from image -> QMP running p95",
      value: vm.diskQmpRunningMs.p95,
      unit: "ms",
      notes: `min ${vm.diskQmpRunningMs.min}, max ${vm.diskQmpRunningMs.max}`,
    },
    {
      name: "VM no disk -> QMP running p50",
      value: vm.noDiskQmpRunningMs.p50,
      unit: "ms",
      notes: "tiny kernel guest, interleaved",
    },
    {
      name: "VM no disk -> QMP running p95",
      value: vm.noDiskQmpRunningMs.p95,
      unit: "ms",
      notes:
        `min ${vm.noDiskQmpRunningMs.min}, max ${vm.noDiskQmpRunningMs.max}`,
    },
    {
      name: "VM from image / no disk p50",
      value: vm.p50Ratio,
      unit: "x",
      notes: "QMP running",
    },
    {
      name: "VM from image -> guest ready p50",
      value: vm.diskGuestReadyMs.p50,
      unit: "ms",
      notes: `booted from its disk; no disk: ${vm.noDiskGuestReadyMs.p50} ms`,
    },
    ...rbdRows(r.rbd),
  ];
}
