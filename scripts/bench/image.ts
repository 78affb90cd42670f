/**
 * Bench phase `image`, two parts in one run:
 *
 * - import throughput, `FileStore.importImage` against `qemu-img convert`
 *   and `cp` of the same qcow2 (image_import.ts);
 * - VM create from an image: the disk guest uploaded through the API and
 *   imported by one real worker into a file store, then VMs made from it
 *   (each its own overlay disk) timed from `POST /v1/vms` to QMP running
 *   and to the guest marker, alternating with no-disk VMs (the tiny kernel
 *   guest) on the same worker; each VM is deleted before the next starts.
 *
 * The RBD store is not measured: drivers/images/ has the RBD calls but no
 * store built on them yet.
 */
import { createApp, LOCAL_ADMIN } from "../../api/app.ts";
import { ConfigSchema } from "../../core/config.ts";
import { ImagesConfig } from "../../core/config_images.ts";
import { Image } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import { Alive, Vm } from "../../core/schemas.ts";
import {
  qemuPids,
  startCluster,
  waitFor,
} from "../../tests/helpers/cluster.ts";
import { ensureDiskGuest } from "../../tests/helpers/disk_guest.ts";
import type { Options } from "./options.ts";
import {
  type Cleanup,
  progress,
  round,
  type Row,
  serve,
  summarize,
  type Summary,
} from "./util.ts";
import { benchImport, type ImportResult, importRows } from "./image_import.ts";
import { vmCreateToRunning, type VmSample } from "./vm.ts";

/** Per-VM limit from POST to the guest marker (the disk guest under TCG). */
const VM_TIMEOUT_MS = 180_000;
const RBD_NOTE = "not measured yet (the bench starts no Ceph)";

/** VM create from a file-store image against no disk, same worker. */
export interface ImageVmResult {
  count: number;
  warmup: number;
  /** Upload of the disk guest through the API until the image is ready. */
  uploadToReadyMs: number;
  diskQmpRunningMs: Summary;
  diskGuestReadyMs: Summary;
  noDiskQmpRunningMs: Summary;
  noDiskGuestReadyMs: Summary;
  /** diskQmpRunningMs.p50 / noDiskQmpRunningMs.p50. */
  p50Ratio: number;
  disk: VmSample[];
  noDisk: VmSample[];
}

/** Result of {@linkcode benchImage}. */
export interface ImageResult {
  import: ImportResult;
  vm: ImageVmResult;
  rbd: { measured: false; reason: string };
}

async function benchImageVms(
  opts: Options,
  cleanup: Cleanup,
): Promise<ImageVmResult> {
  const guest = await ensureDiskGuest();
  progress("image: starting etcd and a worker with a file store");
  const cluster = await startCluster();
  cleanup.add(
    "image cluster (worker, qemu, etcd, temp dir)",
    () => cluster.stop(),
  );
  const images = ImagesConfig.parse({
    uploadDir: `${cluster.dir}/www`,
    fileStoreDir: `${cluster.dir}/store`,
  });
  const configFile = `${cluster.dir}/images.json`;
  await Deno.writeTextFile(configFile, JSON.stringify({ images }));
  const worker = await cluster.addWorker({
    name: "bench-img",
    cpus: 2,
    memoryMiB: 512,
    env: { UCLOUD_CONFIG: configFile },
  });
  const withLog = async (err: unknown): Promise<never> => {
    throw new Error(
      `${(err as Error).message}\n--- worker log tail ---\n${
        (await worker.log()).slice(-3000)
      }`,
    );
  };
  await waitFor(
    "the worker to register",
    () => cluster.store.get(keys.alive("bench-img"), Alive),
    30_000,
  ).catch(withLog);
  const app = createApp({
    store: cluster.store,
    config: { tasks: ConfigSchema.shape.tasks.parse(undefined), images },
  });
  const { base, stop } = serve(app, cleanup);

  progress("image: uploading the disk guest and importing it");
  const t0 = performance.now();
  let r = await fetch(`${base}/v1/images`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "benchdisk" }),
  });
  if (r.status !== 201) throw new Error(`POST /v1/images: ${await r.text()}`);
  const size = (await Deno.stat(guest)).size;
  const file = await Deno.open(guest);
  r = await fetch(`${base}/v1/images/benchdisk/upload`, {
    method: "PUT",
    headers: {
      "content-type": "application/octet-stream",
      "content-range": `bytes 0-${size - 1}/${size}`,
    },
    body: file.readable,
  });
  if (r.status !== 200) throw new Error(`PUT upload: ${await r.text()}`);
  const ref = `${LOCAL_ADMIN.name}/benchdisk`;
  const img = await waitFor("the image ready", async () => {
    const d = (await cluster.store.get(keys.image(ref), Image))?.value;
    return d && d.state !== "uploading" && d.state !== "importing" && d;
  }, 120_000).catch(withLog);
  if (img.state !== "ready") {
    throw new Error(`image ${img.state}: ${img.reason ?? "?"}`);
  }
  const uploadToReadyMs = round(performance.now() - t0);

  const disk: VmSample[] = [];
  const noDisk: VmSample[] = [];
  const total = opts.warmupVms + opts.imageVms;
  const kinds = [
    { kind: "disk", body: { image: "benchdisk", disk: 1 }, to: disk },
    { kind: "no-disk", body: {}, to: noDisk },
  ];
  for (let i = 0; i < total; i++) {
    const warm = i < opts.warmupVms;
    // Alternate which kind goes first, so neither always follows a delete.
    for (const k of i % 2 ? [...kinds].reverse() : kinds) {
      const ids: string[] = [];
      const s = await vmCreateToRunning(
        cluster,
        base,
        `bench-${k.kind}-${i}`,
        ids,
        { body: k.body, timeoutMs: VM_TIMEOUT_MS },
      ).catch(withLog);
      progress(
        `image: ${k.kind} VM ${i + 1}/${total}${warm ? " (warm-up)" : ""}: ` +
          `qmp running ${s.qmpRunningMs} ms, guest ready ${s.guestReadyMs} ms`,
      );
      if (!warm) k.to.push(s);
      r = await fetch(`${base}/v1/vms/${s.id}`, { method: "DELETE" });
      if (r.status !== 202 && r.status !== 200) {
        throw new Error(`DELETE: ${await r.text()}`);
      }
      await waitFor(`VM ${s.id} gone`, async () => {
        if (await cluster.store.get(keys.vm(s.id), Vm)) return false;
        return (await qemuPids(`/vms/${s.id}/`)).length === 0;
      }, 60_000).catch(withLog);
    }
  }
  await stop();
  const pick = (xs: VmSample[], f: (s: VmSample) => number) =>
    summarize(xs.map(f));
  const diskQmpRunningMs = pick(disk, (s) => s.qmpRunningMs);
  const noDiskQmpRunningMs = pick(noDisk, (s) => s.qmpRunningMs);
  return {
    count: opts.imageVms,
    warmup: opts.warmupVms,
    uploadToReadyMs,
    diskQmpRunningMs,
    diskGuestReadyMs: pick(disk, (s) => s.guestReadyMs),
    noDiskQmpRunningMs,
    noDiskGuestReadyMs: pick(noDisk, (s) => s.guestReadyMs),
    p50Ratio: round(diskQmpRunningMs.p50 / noDiskQmpRunningMs.p50, 2),
    disk,
    noDisk,
  };
}

/** Runs the image phase: import throughput, then VM create from an image. */
export async function benchImage(
  opts: Options,
  cleanup: Cleanup,
): Promise<ImageResult> {
  const imp = await benchImport(opts.importMiB, opts.importRounds, cleanup);
  await cleanup.run();
  const vm = await benchImageVms(opts, cleanup);
  await cleanup.run();
  return { import: imp, vm, rbd: { measured: false, reason: RBD_NOTE } };
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
    { name: "VM from image, rbd", value: "-", unit: "", notes: r.rbd.reason },
  ];
}
