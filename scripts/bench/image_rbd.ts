/**
 * Bench phase `image`, its RBD part (image.ts runs it; skipped under
 * --quick): a one-node Ceph (scripts/ceph_fixture.sh) in a temp dir of the
 * bench, and a cluster of its own whose worker has `images.store: "rbd"`.
 *
 * - import: the disk guest uploaded through the API (PUT upload, the
 *   worker's `image.import` into the pool) several times, each round
 *   alternating with a plain `qemu-img convert -f qcow2 -O raw` of the same
 *   file into the pool; medians, MiB/s of the qcow2 file;
 * - VM create from the RBD image (a clone per VM, booted raw through
 *   librbd) to QMP running and to the guest marker, interleaved with
 *   no-disk VMs on the same worker (image_cluster.ts).
 */
import { rbdFilename, removeImage } from "../../drivers/images/rbd.ts";
import { run } from "../../drivers/runner.ts";
import { startCeph } from "../../tests/helpers/ceph.ts";
import { ensureDiskGuest } from "../../tests/helpers/disk_guest.ts";
import type { Options } from "./options.ts";
import { type Cleanup, percentile, progress, round, type Row } from "./util.ts";
import {
  compareVms,
  startImageCluster,
  uploadImage,
  type VmComparison,
} from "./image_cluster.ts";

const MiB = 1024 * 1024;
const QUICK_NOTE =
  "skipped under --quick to keep the smoke run short (Ceph, imports, VMs); the full run measures it";

/** The RBD part, measured. */
export interface RbdMeasured {
  measured: true;
  /** How long the one-node Ceph took to start. */
  cephStartMs: number;
  /** Bytes of the disk guest's qcow2 file every import reads. */
  fileBytes: number;
  rounds: number;
  /** fileBytes over the median `image.import` task run. */
  importMiBps: number;
  /** fileBytes over the median `qemu-img convert` into the pool. */
  convertMiBps: number;
  /** importMiBps / convertMiBps (above 1: the import is faster). */
  importVsConvert: number;
  /** Median from `POST /v1/images` until the image is ready. */
  uploadToReadyMedianMs: number;
  importTaskMs: number[];
  uploadToReadyMs: number[];
  convertMs: number[];
  vm: VmComparison;
}

/** Result of {@linkcode benchRbd}. */
export type RbdResult = RbdMeasured | { measured: false; reason: string };

/** Runs the RBD part; everything it starts is stopped by `cleanup`. */
export async function benchRbd(
  opts: Options,
  cleanup: Cleanup,
): Promise<RbdResult> {
  if (opts.quick) return { measured: false, reason: QUICK_NOTE };
  const guest = await ensureDiskGuest();
  const dir = await Deno.makeTempDir({ prefix: "uc-bench-rbd-" });
  cleanup.add("rbd temp dir", () => Deno.remove(dir, { recursive: true }));
  progress("image rbd: starting a one-node Ceph");
  const ceph = await startCeph({ parentDir: dir });
  cleanup.add("ceph", () => ceph.stop());
  const pool = ceph.pool;
  progress("image rbd: starting etcd and a worker with an RBD store");
  const c = await startImageCluster(cleanup, "bench-rbd", {
    store: "rbd",
    rbd: { pool: pool.pool, cephConf: pool.conf, user: pool.user },
  });
  const fileBytes = (await Deno.stat(guest)).size;
  const long = { timeoutMs: 300_000 };
  const importTaskMs: number[] = [];
  const uploadToReadyMs: number[] = [];
  const convertMs: number[] = [];
  const methods = [
    async (i: number) => {
      const t = await uploadImage(c, `benchrbd-${i}`, guest);
      importTaskMs.push(t.importTaskMs);
      uploadToReadyMs.push(t.uploadToReadyMs);
    },
    async (i: number) => {
      const target = rbdFilename(pool, `bench-convert-${i}`);
      const t = performance.now();
      await run("qemu-img", [
        "convert",
        "-f",
        "qcow2",
        "-O",
        "raw",
        guest,
        target,
      ], long);
      convertMs.push(round(performance.now() - t));
      await removeImage(pool, `bench-convert-${i}`);
    },
  ];
  // One untimed read puts the guest file in the page cache.
  await run("cp", [guest, `${dir}/warm.qcow2`], long);
  await Deno.remove(`${dir}/warm.qcow2`);
  for (let i = 0; i < opts.importRounds; i++) {
    for (const m of i % 2 ? [...methods].reverse() : methods) await m(i);
    progress(
      `image rbd: import round ${i + 1}/${opts.importRounds}: import task ` +
        `${importTaskMs[i]} ms (upload -> ready ${uploadToReadyMs[i]} ms), ` +
        `convert ${convertMs[i]} ms`,
    );
  }
  const vm = await compareVms(opts, c, "benchrbd-0", "image rbd");
  await c.stop();
  const mibps = (ms: number[]) =>
    round(fileBytes / MiB / (percentile(ms, 50) / 1000));
  const importMiBps = mibps(importTaskMs);
  const convertMiBps = mibps(convertMs);
  return {
    measured: true,
    cephStartMs: ceph.startMs,
    fileBytes,
    rounds: opts.importRounds,
    importMiBps,
    convertMiBps,
    importVsConvert: round(importMiBps / convertMiBps, 2),
    uploadToReadyMedianMs: percentile(uploadToReadyMs, 50),
    importTaskMs,
    uploadToReadyMs,
    convertMs,
    vm,
  };
}

/** Rows of the bench table. */
export function rbdRows(r: RbdResult): Row[] {
  if (!r.measured) {
    return [{
      name: "VM from image, rbd",
      value: "-",
      unit: "",
      notes: r.reason,
    }];
  }
  const vm = r.vm;
  const src = `${round(r.fileBytes / MiB)} MiB disk guest qcow2, median of ` +
    `${r.rounds}, one-node Ceph (1 OSD on a file)`;
  const n = `n=${vm.count}, 1 CPU 128 MiB, TCG, same worker`;
  return [
    {
      name: "image import (RBD)",
      value: r.importMiBps,
      unit: "MiB/s",
      notes: `image.import task: checks + copy + sha256 + convert + ` +
        `snapshot; ${src}`,
    },
    {
      name: "image qemu-img convert -> rbd",
      value: r.convertMiBps,
      unit: "MiB/s",
      notes: "-f qcow2 -O raw into the pool, same file",
    },
    {
      name: "image RBD import / convert",
      value: r.importVsConvert,
      unit: "x",
      notes: "throughput ratio (>1: import faster)",
    },
    {
      name: "image RBD upload -> ready",
      value: r.uploadToReadyMedianMs,
      unit: "ms",
      notes: "disk guest via PUT upload + import task, median",
    },
    {
      name: "VM from RBD image -> QMP running p50",
      value: vm.diskQmpRunningMs.p50,
      unit: "ms",
      notes: `own clone, raw through librbd; ${n}`,
    },
    {
      name: "VM from RBD image -> QMP running p95",
      value: vm.diskQmpRunningMs.p95,
      unit: "ms",
      notes: `min ${vm.diskQmpRunningMs.min}, max ${vm.diskQmpRunningMs.max}`,
    },
    {
      name: "VM no disk (RBD worker) p50",
      value: vm.noDiskQmpRunningMs.p50,
      unit: "ms",
      notes: `QMP running, interleaved; p95 ${vm.noDiskQmpRunningMs.p95}`,
    },
    {
      name: "VM from RBD image / no disk p50",
      value: vm.p50Ratio,
      unit: "x",
      notes: "QMP running",
    },
    {
      name: "VM from RBD image -> guest ready p50",
      value: vm.diskGuestReadyMs.p50,
      unit: "ms",
      notes: `booted from its disk; no disk: ${vm.noDiskGuestReadyMs.p50} ms`,
    },
    {
      name: "Ceph one-node start",
      value: r.cephStartMs,
      unit: "ms",
      notes: "mon, mgr, 1 OSD, pool; not part of any figure above",
    },
  ];
}
