/**
 * `image.fetch` (target `any`, payload `{ image: ref, url }`): downloads an
 * image's URL on a host into `<uploadDir>/.incoming/<owner>/<name>`
 * (tasks/url_download.ts: checked addresses, size limit, timeout), then
 * hands it to `image.import` in the completion transaction, which compares
 * the image's revision. A refused or failed download records the image
 * `failed` with the reason (the task itself succeeds: retrying cannot
 * help) and removes the partial file. An image gone, or no longer waiting
 * for this task, is left alone.
 *
 * @example
 * ```ts
 * handlers["image.fetch"] = imageFetch;
 * ```
 */
import { z } from "zod";
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { enqueue } from "../core/task_doc.ts";
import {
  ensureIncoming,
  importTask,
  incomingFile,
  removeFile,
} from "../resources/images/paths.ts";
import { PermanentError, type TaskHandler } from "./context.ts";
import { download, DownloadError } from "./url_download.ts";

const Payload = z.object({
  image: z.string().regex(/^[a-z0-9][a-z0-9-]*\/[a-z0-9][a-z0-9-]*$/),
  url: z.string(),
});

/** Downloads the image's URL and enqueues its import (see the module doc). */
export const imageFetch: TaskHandler = async (ctx) => {
  const { store, config, task, log } = ctx;
  const p = Payload.safeParse(task.payload);
  if (!p.success) {
    throw new PermanentError(
      `Cannot fetch: bad payload ${JSON.stringify(task.payload)}`,
    );
  }
  const { image: ref, url } = p.data;
  const img = await store.get(keys.image(ref), Image);
  if (!img) {
    // Deleted while fetching: what this task downloaded has no owner now.
    const [owner, name] = ref.split("/");
    await removeFile(incomingFile(config.images, owner, name));
  }
  if (!img || img.value.state !== "importing" || img.value.task !== task.id) {
    return {
      result: { skipped: `image ${ref} no longer waits for this fetch` },
    };
  }
  const cfg = config.images;
  const { owner, name } = img.value;
  await ensureIncoming(cfg, owner);
  const file = incomingFile(cfg, owner, name);
  const now = () => new Date().toISOString();
  try {
    await ctx.progress(`fetching ${url}`);
    const got = await download(url, file, {
      maxBytes: cfg.maxUploadBytes,
      timeoutMs: cfg.urlTimeoutSeconds * 1000,
      allowPrivate: cfg.allowPrivateUrls,
      signal: ctx.signal,
      onProgress: (bytes, total) => {
        const of = total ? ` of ${total}` : "";
        ctx.progress(`fetched ${bytes}${of} bytes`).catch(() => {});
      },
    });
    const next = importTask(config, ref, file, owner);
    const txn = ctx.guard().ifModRevision(img.key, img.modRevision)
      .put(img.key, {
        ...img.value,
        progress: 0,
        task: next.id,
        updatedAt: now(),
      });
    log.info("image fetched", { image: ref, bytes: got.bytes, url: got.url });
    return {
      result: { bytes: got.bytes, import: next.id },
      txn: enqueue(txn, next),
    };
  } catch (err) {
    await removeFile(file);
    if (!(err instanceof DownloadError) || ctx.signal.aborted) throw err;
    log.warn("image fetch failed", { image: ref, url, reason: err.message });
    const failed: Image = {
      ...img.value,
      state: "failed",
      reason: err.message,
      updatedAt: now(),
    };
    delete failed.progress;
    const txn = ctx.guard().ifModRevision(img.key, img.modRevision)
      .put(img.key, failed);
    return { result: { failed: err.message }, txn };
  }
};
