/**
 * The clusters of the bench phase `image` (image.ts, image_rbd.ts): etcd and
 * one worker with a given `images` config behind the API, the disk guest
 * uploaded through it, and VMs from the image timed against no-disk VMs on
 * the same worker.
 */
import { createApp, LOCAL_ADMIN } from "../../api/app.ts";
import { ConfigSchema } from "../../core/config.ts";
import { ImagesConfig } from "../../core/config_images.ts";
import { Image } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import { Alive, Task, Vm } from "../../core/schemas.ts";
import {
  type Cluster,
  qemuPids,
  startCluster,
  waitFor,
} from "../../tests/helpers/cluster.ts";
import type { Options } from "./options.ts";
import {
  type Cleanup,
  progress,
  round,
  serve,
  summarize,
  type Summary,
} from "./util.ts";
import { vmCreateToRunning, type VmSample } from "./vm.ts";

/** Per-VM limit from POST to the guest marker (the disk guest under TCG). */
const VM_TIMEOUT_MS = 180_000;

/** VM create from an image against no disk, same worker, interleaved. */
export interface VmComparison {
  count: number;
  warmup: number;
  diskQmpRunningMs: Summary;
  diskGuestReadyMs: Summary;
  noDiskQmpRunningMs: Summary;
  noDiskGuestReadyMs: Summary;
  /** diskQmpRunningMs.p50 / noDiskQmpRunningMs.p50. */
  p50Ratio: number;
  disk: VmSample[];
  noDisk: VmSample[];
}

/** etcd, one worker with an `images` config, and the API in front. */
export interface ImageCluster {
  cluster: Cluster;
  base: string;
  /** Rethrows `err` with the tail of the worker's log. */
  withLog(err: unknown): Promise<never>;
  /** Stops the HTTP server (the cleanup stack stops the rest). */
  stop(): Promise<void>;
}

/**
 * Starts a cluster with worker `name` whose `images` config is the upload
 * and file-store dirs in the cluster's dir plus `extra` (e.g. an RBD store);
 * everything is stopped by `cleanup`.
 */
export async function startImageCluster(
  cleanup: Cleanup,
  name: string,
  extra: Record<string, unknown> = {},
): Promise<ImageCluster> {
  const cluster = await startCluster();
  cleanup.add(
    `${name} cluster (worker, qemu, etcd, temp dir)`,
    () => cluster.stop(),
  );
  const images = ImagesConfig.parse({
    uploadDir: `${cluster.dir}/www`,
    fileStoreDir: `${cluster.dir}/store`,
    ...extra,
  });
  const configFile = `${cluster.dir}/images.json`;
  await Deno.writeTextFile(configFile, JSON.stringify({ images }));
  const worker = await cluster.addWorker({
    name,
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
    () => cluster.store.get(keys.alive(name), Alive),
    30_000,
  ).catch(withLog);
  const app = createApp({
    store: cluster.store,
    config: { tasks: ConfigSchema.shape.tasks.parse(undefined), images },
  });
  const { base, stop } = serve(app, cleanup);
  return { cluster, base, withLog, stop };
}

/** One upload through the API, timed. */
export interface UploadTiming {
  /** From `POST /v1/images` until the image is ready. */
  uploadToReadyMs: number;
  /** The `image.import` task from running to succeeded (task history). */
  importTaskMs: number;
}

/** Uploads `file` as image `name` (PUT upload) and waits until ready. */
export async function uploadImage(
  c: ImageCluster,
  name: string,
  file: string,
): Promise<UploadTiming> {
  const t0 = performance.now();
  let r = await fetch(`${c.base}/v1/images`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  if (r.status !== 201) throw new Error(`POST /v1/images: ${await r.text()}`);
  const size = (await Deno.stat(file)).size;
  const f = await Deno.open(file);
  r = await fetch(`${c.base}/v1/images/${name}/upload`, {
    method: "PUT",
    headers: {
      "content-type": "application/octet-stream",
      "content-range": `bytes 0-${size - 1}/${size}`,
    },
    body: f.readable,
  });
  if (r.status !== 200) throw new Error(`PUT upload: ${await r.text()}`);
  const ref = `${LOCAL_ADMIN.name}/${name}`;
  const img = await waitFor("the image ready", async () => {
    const d = (await c.cluster.store.get(keys.image(ref), Image))?.value;
    return d && d.state !== "uploading" && d.state !== "importing" && d;
  }, 120_000).catch(c.withLog);
  if (img.state !== "ready") {
    throw new Error(`image ${img.state}: ${img.reason ?? "?"}`);
  }
  const uploadToReadyMs = round(performance.now() - t0);
  const task = img.task
    ? (await c.cluster.store.get(keys.task(img.task), Task))?.value
    : undefined;
  const at = (state: string) =>
    Date.parse(task?.history.findLast((e) => e.state === state)?.at ?? "");
  return { uploadToReadyMs, importTaskMs: at("succeeded") - at("running") };
}

/**
 * Creates VMs by turns, one from `image` (its own 1 GiB disk) and one with
 * no disk, each timed to QMP running and to the guest marker, then deleted
 * and waited gone; which kind goes first swaps each round.
 */
export async function compareVms(
  opts: Options,
  c: ImageCluster,
  image: string,
  label: string,
): Promise<VmComparison> {
  const disk: VmSample[] = [];
  const noDisk: VmSample[] = [];
  const total = opts.warmupVms + opts.imageVms;
  const kinds = [
    { kind: "disk", body: { image, disk: 1 }, to: disk },
    { kind: "no-disk", body: {}, to: noDisk },
  ];
  for (let i = 0; i < total; i++) {
    const warm = i < opts.warmupVms;
    // Alternate which kind goes first, so neither always follows a delete.
    for (const k of i % 2 ? [...kinds].reverse() : kinds) {
      const s = await vmCreateToRunning(
        c.cluster,
        c.base,
        `bench-${k.kind}-${i}`,
        [],
        { body: k.body, timeoutMs: VM_TIMEOUT_MS },
      ).catch(c.withLog);
      progress(
        `${label}: ${k.kind} VM ${i + 1}/${total}${warm ? " (warm-up)" : ""}` +
          `: qmp running ${s.qmpRunningMs} ms, guest ready ${s.guestReadyMs} ms`,
      );
      if (!warm) k.to.push(s);
      const r = await fetch(`${c.base}/v1/vms/${s.id}`, { method: "DELETE" });
      if (r.status !== 202 && r.status !== 200) {
        throw new Error(`DELETE: ${await r.text()}`);
      }
      await waitFor(`VM ${s.id} gone`, async () => {
        if (await c.cluster.store.get(keys.vm(s.id), Vm)) return false;
        return (await qemuPids(`/vms/${s.id}/`)).length === 0;
      }, 60_000).catch(c.withLog);
    }
  }
  const pick = (xs: VmSample[], f: (s: VmSample) => number) =>
    summarize(xs.map(f));
  const diskQmpRunningMs = pick(disk, (s) => s.qmpRunningMs);
  const noDiskQmpRunningMs = pick(noDisk, (s) => s.qmpRunningMs);
  return {
    count: opts.imageVms,
    warmup: opts.warmupVms,
    diskQmpRunningMs,
    diskGuestReadyMs: pick(disk, (s) => s.guestReadyMs),
    noDiskQmpRunningMs,
    noDiskGuestReadyMs: pick(noDisk, (s) => s.guestReadyMs),
    p50Ratio: round(diskQmpRunningMs.p50 / noDiskQmpRunningMs.p50, 2),
    disk,
    noDisk,
  };
}
