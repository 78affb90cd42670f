/**
 * Runs `image.import` and `image.delete` on real components: a throwaway
 * etcd (tests/helpers/task_ctx.ts), a file store and an upload directory in
 * a temp dir, qcow2 files made by the real qemu-img. `importFile()` puts an
 * `importing` image document, runs the handler, completes the task with its
 * transaction and returns the image document.
 */
import assert from "node:assert/strict";
import type { Config } from "../../core/config.ts";
import { Image, imageRef } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import { run } from "../../drivers/runner.ts";
import { FileStore } from "../../drivers/images/file_store.ts";
import type { TaskContext, TaskHandler } from "../../tasks/context.ts";
import { imageImport } from "../../tasks/image_import.ts";
import { complete, type WorkerId } from "../../tasks/queue.ts";
import { type Bench, withBench } from "./task_ctx.ts";

/** What a test body gets from {@linkcode withImageEnv}. */
export interface ImageEnv {
  bench: Bench;
  config: Config;
  store: FileStore;
  /** The store's directory. */
  storeDir: string;
  /** `<uploadDir>/alice/upload/`: where the files to import are made. */
  upload: string;
  /** A temp dir outside the upload and store directories ("the host"). */
  host: string;
  worker: WorkerId;
  /** Runs `handler` as a claimed task with the env's config and store. */
  runTask(
    handler: TaskHandler,
    kind: string,
    payload: Record<string, unknown>,
  ): Promise<{ result: unknown; progress: string[] }>;
  /** Imports `file` (in `upload`) as image `alice/<name>`; its document after. */
  importFile(file: string, name?: string): Promise<Image>;
  /** Every file (not directory) left in the store, relative to it. */
  storeFiles(): Promise<string[]>;
}

async function filesUnder(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/${rel}`)) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) out.push(...await filesUnder(dir, p));
      else out.push(p);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** Runs `f` with a fresh image env; removes everything afterwards. */
export async function withImageEnv(
  f: (env: ImageEnv) => Promise<void>,
  images: Partial<Config["images"]> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "uc-img-" });
  try {
    await withBench(async (bench) => {
      const uploadDir = `${dir}/www`;
      const upload = `${uploadDir}/alice/upload`;
      const storeDir = `${dir}/store`;
      await Deno.mkdir(upload, { recursive: true });
      await Deno.mkdir(`${dir}/host`);
      const config: Config = {
        ...bench.config,
        images: {
          ...bench.config.images,
          uploadDir,
          fileStoreDir: storeDir,
          ...images,
        },
      };
      const store = FileStore.fromConfig(config);
      const worker = await bench.incarnation("h1");
      const env: ImageEnv = {
        bench,
        config,
        store,
        storeDir,
        upload,
        host: `${dir}/host`,
        worker,
        async runTask(handler, kind, payload) {
          const base = await bench.context(worker, kind, payload);
          const progress: string[] = [];
          const ctx: TaskContext = {
            ...base,
            config,
            imageStore: store,
            progress: (m) => Promise.resolve(void progress.push(m)),
          };
          const out = await handler(ctx);
          assert.ok(
            await complete(bench.store, ctx.task, worker, out.result, out.txn),
            "the completion lost its compare",
          );
          return { result: out.result, progress };
        },
        async importFile(file, name = "img") {
          const ref = imageRef("alice", name);
          const now = new Date().toISOString();
          const doc: Image = {
            name,
            owner: "alice",
            public: false,
            state: "importing",
            source: { kind: "file", file },
            createdAt: now,
            updatedAt: now,
          };
          await bench.store.txn().put(keys.image(ref), doc).commit();
          await env.runTask(imageImport, "image.import", {
            image: ref,
            file: `${upload}/${file}`,
          });
          return (await bench.store.get(keys.image(ref), Image))!.value;
        },
        storeFiles: () => filesUnder(storeDir),
      };
      await f(env);
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Runs qemu-img (or another tool) for a fixture; its stdout. */
export async function tool(cmd: string, ...args: string[]): Promise<string> {
  return (await run(cmd, args, { timeoutMs: 120_000 })).stdout;
}

/** Makes a qcow2 of `size` with `pattern` written at 0..64k; its path. */
export async function makeQcow2(
  path: string,
  size = "64M",
  pattern?: number,
): Promise<string> {
  await tool("qemu-img", "create", "-q", "-f", "qcow2", path, size);
  if (pattern !== undefined) {
    await tool(
      "qemu-io",
      "-f",
      "qcow2",
      "-c",
      `write -P ${pattern} 0 64k`,
      path,
    );
  }
  return path;
}

/** Overwrites bytes of a file at `offset`. */
export async function patch(
  path: string,
  offset: number,
  bytes: Uint8Array,
): Promise<void> {
  using f = await Deno.open(path, { write: true });
  await f.seek(offset, Deno.SeekMode.Start);
  await f.write(bytes);
}

/** Whether a path exists (without following a symlink). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
