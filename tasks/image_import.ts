/**
 * `image.import` (target `any`, payload `{ image: ref, file }`): checks the
 * uploaded `file` and stores it (tasks/image_store.ts), writing progress
 * 0-100 into the image document and the task, then records the outcome in
 * the completion transaction, which compares the image document's revision:
 * state `ready` with what was stored, or, for a file the store refuses,
 * state `failed` with the reason (a successful run that records the
 * refusal) and nothing stored. The file is removed in both cases: the
 * upload directory is a staging area.
 *
 * An image that is gone, no longer `importing`, or importing by another
 * task is skipped, and what this task stored is removed.
 *
 * @example
 * ```ts
 * const task = newTask({ kind: "image.import", target: "any",
 *   payload: { image: "alice/deb", file: "/var/www/alice/upload/deb.qcow2" } });
 * ```
 */
import { basename, dirname, resolve } from "node:path";
import { z } from "zod";
import type { Config } from "../core/config.ts";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import type { Kv } from "../core/store.ts";
import type { Task } from "../core/schemas.ts";
import {
  PermanentError,
  type TaskContext,
  type TaskHandler,
} from "./context.ts";
import {
  ImageRejected,
  type ImageStore,
  type StoredImage,
} from "./image_store.ts";

const Payload = z.object({ image: z.string().min(1), file: z.string() });
type Payload = z.infer<typeof Payload>;

/** What one claim's import came to: reruns after a lost compare reuse it. */
type Outcome =
  | { stored: StoredImage; store: ImageStore["kind"] }
  | { rejected: string; keepSource?: boolean }
  | { cancelled: true };
const outcomes = new WeakMap<Task, Outcome>();

/** The image went away (or to another import) while this one copied. */
class Cancelled extends Error {}

/** Progress is written to etcd each this many percent. */
const PROGRESS_STEP = 5;

/** The image document while this task may import it. */
async function readOurs(
  ctx: TaskContext,
  ref: string,
): Promise<Kv<Image> | null> {
  const cur = await ctx.store.get(keys.image(ref), Image);
  if (!cur || cur.value.state !== "importing") return null;
  if (cur.value.task && cur.value.task !== ctx.task.id) return null;
  return cur;
}

/**
 * Whether `file` is where the owner's files wait for import: their SFTP
 * upload directory or their `.incoming/` one (never anything else, even
 * when the payload says so).
 */
function isStaged(config: Config, ref: string, file: string): boolean {
  const root = resolve(config.images.uploadDir);
  const owner = ref.split("/")[0];
  const name = basename(file);
  return file === resolve(file) && name !== "" && name !== ".." &&
    [`${root}/${owner}/upload`, `${root}/.incoming/${owner}`]
      .includes(dirname(file));
}

async function writeProgress(
  ctx: TaskContext,
  ref: string,
  storedAs: string,
  percent: number,
): Promise<void> {
  await ctx.progress(`importing ${percent}%`);
  for (let i = 0; i < 3; i++) {
    const cur = await readOurs(ctx, ref);
    if (!cur) throw new Cancelled();
    const doc: Image = {
      ...cur.value,
      progress: percent,
      storedAs,
      updatedAt: new Date().toISOString(),
    };
    const r = await ctx.guard().ifModRevision(cur.key, cur.modRevision)
      .put(cur.key, doc).commit();
    if (r.ok) return;
  }
}

async function runImport(
  ctx: TaskContext,
  store: ImageStore,
  p: Payload,
  storedAs: string,
): Promise<Outcome> {
  if (!isStaged(ctx.config, p.image, p.file)) {
    return {
      rejected: `the file ${p.file} is not in the owner's upload directory`,
      keepSource: true,
    };
  }
  let written = -PROGRESS_STEP;
  const onProgress = async (percent: number) => {
    if (percent < written + PROGRESS_STEP && percent < 100) return;
    written = percent;
    await writeProgress(ctx, p.image, storedAs, percent);
  };
  try {
    const stored = await store.importImage(p.file, storedAs, onProgress, {
      signal: ctx.signal,
    });
    return { stored, store: store.kind };
  } catch (err) {
    if (err instanceof ImageRejected) return { rejected: err.message };
    if (err instanceof Cancelled) return { cancelled: true };
    // The last attempt records why instead of leaving the image importing.
    if (ctx.signal.aborted || ctx.task.attempts < ctx.task.maxAttempts) {
      throw err;
    }
    const message = err instanceof Error ? err.message : String(err);
    return { rejected: `the import failed: ${message}` };
  }
}

async function removeSource(ctx: TaskContext, file: string): Promise<void> {
  try {
    await Deno.remove(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    ctx.log.warn("cannot remove the imported file", { file, error: `${err}` });
  }
}

export const imageImport: TaskHandler = async (ctx) => {
  const parsed = Payload.safeParse(ctx.task.payload);
  if (!parsed.success) {
    throw new PermanentError(`Bad image.import payload: ${parsed.error}`);
  }
  const p = parsed.data;
  const store = ctx.imageStore;
  const first = await readOurs(ctx, p.image);
  const storedAs = first?.value.storedAs ?? `${p.image}-${ctx.task.id}`;
  const skip = async (why: string) => {
    await store?.removeImage(storedAs, { signal: ctx.signal });
    if (isStaged(ctx.config, p.image, p.file)) await removeSource(ctx, p.file);
    return { result: { image: p.image, skipped: why } };
  };
  if (!first) return await skip("the image is gone or not importing");
  let outcome = outcomes.get(ctx.task);
  if (!outcome) {
    // No store here is a configuration error: recorded, not retried.
    outcome = store ? await runImport(ctx, store, p, storedAs) : {
      rejected: `no image store "${ctx.config.images.store}" on ${ctx.host}`,
    };
    outcomes.set(ctx.task, outcome);
    if (!("keepSource" in outcome)) await removeSource(ctx, p.file);
  }
  if ("cancelled" in outcome) return await skip("the image went away");
  const cur = await readOurs(ctx, p.image);
  if (!cur) return await skip("the image went away");
  const now = new Date().toISOString();
  const base = { ...cur.value, progress: undefined, updatedAt: now };
  const doc: Image = "stored" in outcome
    ? {
      ...base,
      ...outcome.stored,
      state: "ready",
      store: outcome.store,
      storedAs,
      reason: undefined,
    }
    : {
      ...base,
      state: "failed",
      reason: outcome.rejected,
      storedAs: undefined,
    };
  ctx.log.info("image import", {
    image: p.image,
    state: doc.state,
    reason: doc.reason,
  });
  return {
    result: { image: p.image, state: doc.state, reason: doc.reason },
    txn: ctx.guard().ifModRevision(cur.key, cur.modRevision).put(cur.key, doc),
  };
};
