/**
 * HTTP upload of an image's bytes (`PUT /v1/images/{name}/upload`): the
 * request body is streamed, chunk by chunk, into
 * `<uploadDir>/.incoming/<owner>/<name>.part` (never held whole in
 * memory), under an exclusive lock of that file, refused past
 * `images.maxUploadBytes` (the part removed). A `Content-Range` appends
 * when it starts at the bytes already received, so a broken upload
 * resumes; when the last byte is in, the part becomes the import's file
 * and the image turns `importing` with its `image.import` task, in one
 * transaction comparing the image's revision.
 *
 * @example
 * ```ts
 * const r = await receiveUpload(deps, who, "deb12", { body, range: { start: 0, end: 99, total: 200 } });
 * r.offset; // 100: send bytes 100-199 next
 * ```
 */
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
} from "../../core/errors.ts";
import { Image, imageRef } from "../../core/image_schemas.ts";
import type { Kv } from "../../core/store.ts";
import { askedBy, enqueue } from "../../core/task_doc.ts";
import { type Caller, canSee, type ResourceDeps } from "../deps.ts";
import {
  ensureIncoming,
  imagesConfigOf,
  importTask,
  incomingFile,
  partPath,
  removeFile,
} from "./paths.ts";
import { readImage } from "./view.ts";

/** The upload is over `images.maxUploadBytes` (HTTP 413); nothing is kept. */
export class TooLargeError extends Error {
  override name = "TooLargeError";
}

/** A chunk that does not start where the received bytes end (HTTP 416). */
export class OffsetError extends Error {
  override name = "OffsetError";
  constructor(readonly offset: number, start: number) {
    super(
      `Cannot append bytes from ${start}: ${offset} bytes are received; resume at ${offset}`,
    );
  }
}

/** `Content-Range: bytes start-end/total` (end inclusive). */
export interface ByteRange {
  start: number;
  end: number;
  total: number;
}

/** One request's bytes: the body, its range or else its length if known. */
export interface UploadChunk {
  body: ReadableStream<Uint8Array> | null;
  range?: ByteRange;
  length?: number;
}

/** Where an upload stands: bytes received, and whether it is complete. */
export interface UploadState {
  offset: number;
  complete: boolean;
  image: Image;
}

/** Reads the image and requires `who` to own it (or be an admin). */
async function ownImage(
  { store }: ResourceDeps,
  who: Caller,
  name: string,
  owner: string,
): Promise<Kv<Image>> {
  const img = await readImage(store, who, name, owner);
  if (!canSee(who, owner)) {
    throw new ForbiddenError(
      `Cannot upload to image ${owner}/${name}: it is not ${who.name}'s`,
    );
  }
  return img;
}

/** How many bytes of image `name`'s upload are received. */
export async function uploadOffset(
  deps: ResourceDeps,
  who: Caller,
  name: string,
  owner = who.name,
): Promise<UploadState> {
  const img = await ownImage(deps, who, name, owner);
  const part = partPath(imagesConfigOf(deps.config), owner, name);
  const st = await Deno.stat(part).catch(() => null);
  return {
    offset: st?.size ?? 0,
    complete: img.value.state !== "uploading",
    image: img.value,
  };
}

/**
 * Receives one chunk of image `name`'s bytes (see the module doc). Throws
 * ConflictError unless the image is `uploading`, OffsetError for a range
 * that does not start at the received bytes, TooLargeError past the
 * limit, InvalidError for a body longer than its range or an empty image.
 * A body that breaks off keeps what arrived, for the resume.
 */
export async function receiveUpload(
  deps: ResourceDeps,
  who: Caller,
  name: string,
  { body, range, length }: UploadChunk,
  owner = who.name,
): Promise<UploadState> {
  const cfg = imagesConfigOf(deps.config);
  const max = cfg.maxUploadBytes;
  const img = await ownImage(deps, who, name, owner);
  if (img.value.state !== "uploading") {
    throw new ConflictError(
      `Cannot upload to image ${name}: it is ${img.value.state}, not uploading`,
    );
  }
  const part = partPath(cfg, owner, name);
  const total = range?.total ?? length;
  const tooLarge = () => {
    return new TooLargeError(
      `Cannot upload image ${name}: it is larger than the limit of ${max} bytes`,
    );
  };
  if (total !== undefined && total > max) {
    await removeFile(part);
    throw tooLarge();
  }
  if (total === 0) {
    throw new InvalidError("body", "An image needs at least one byte");
  }
  await ensureIncoming(cfg, owner);
  const file = await Deno.open(part, { create: true, write: true });
  let offset = 0;
  try {
    await file.lock(true);
    const have = (await file.stat()).size;
    const start = range?.start ?? 0;
    if (range && start !== have) throw new OffsetError(have, start);
    // A request without a range is the whole image: it starts over.
    if (!range) await file.truncate(0);
    await file.seek(start, Deno.SeekMode.Start);
    offset = start;
    const end = range ? range.end + 1 : total ?? max;
    const reader = (body ?? ReadableStream.from<Uint8Array>([])).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read().catch((err) => {
          throw new InvalidError(
            "body",
            `The body broke off after byte ${offset} (${err.message}); resume from ${offset}`,
          );
        });
        if (done) break;
        if (offset + value.length > max) {
          await removeFile(part);
          throw tooLarge();
        }
        if (offset + value.length > end) {
          throw new InvalidError(
            "Content-Range",
            `The body is longer than its range ${start}-${end - 1}`,
          );
        }
        for (let at = 0; at < value.length;) {
          at += await file.write(value.subarray(at));
        }
        offset += value.length;
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  } finally {
    file.close();
  }
  const complete = total === undefined || offset === total;
  if (!complete) return { offset, complete, image: img.value };
  if (offset === 0) {
    throw new InvalidError("body", "An image needs at least one byte");
  }
  return { offset, complete, image: await finish(deps, who, img, part) };
}

/**
 * The last byte is in: the part becomes the import's file and the image
 * `importing` with its `image.import` task (one transaction comparing the
 * image's revision). When the image went away meanwhile, the file goes.
 */
async function finish(
  { store, config }: ResourceDeps,
  who: Caller,
  img: Kv<Image>,
  part: string,
): Promise<Image> {
  const { owner, name } = img.value;
  const file = incomingFile(imagesConfigOf(config), owner, name);
  await Deno.rename(part, file);
  const ref = imageRef(owner, name);
  let cur: Kv<Image> | null = img;
  for (let i = 0; i < 5 && cur?.value.state === "uploading"; i++) {
    const task = askedBy(importTask(config, ref, file, owner), who);
    const next: Image = {
      ...cur.value,
      state: "importing",
      progress: 0,
      task: task.id,
      updatedAt: new Date().toISOString(),
    };
    const txn = store.txn().ifModRevision(cur.key, cur.modRevision)
      .put(cur.key, next);
    if ((await enqueue(txn, task).commit()).ok) return next;
    cur = await store.get(cur.key, Image);
  }
  await removeFile(file);
  throw new ConflictError(
    `Cannot import image ${name}: it was deleted or changed during the upload`,
  );
}
