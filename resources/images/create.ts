/**
 * Creating an image document for one of three sources (issue 11):
 * nothing (state `uploading`: the bytes follow over HTTP, upload.ts), a
 * file of the caller's SFTP upload directory (moved out of the user's
 * reach, state `importing` with its `image.import` task), or a URL (state
 * `importing` with its `image.fetch` task). The document and its task are
 * written in one transaction that requires the document to be absent.
 *
 * @example
 * ```ts
 * const { image, task } = await createImage(deps, who, { name: "deb12", file: "deb12.qcow2" });
 * image.state; // "importing"
 * ```
 */
import { ConflictError, InvalidError } from "../../core/errors.ts";
import {
  Image,
  type ImageCreateInput,
  imageRef,
} from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import type { Task } from "../../core/schemas.ts";
import { askedBy, enqueue, newTask } from "../../core/task_doc.ts";
import { refusedUrl } from "../../core/url_policy.ts";
import type { Caller, ResourceDeps } from "../deps.ts";
import {
  ensureIncoming,
  imagesConfigOf,
  importTask,
  incomingFile,
  uploadDirOf,
  uploadFile,
} from "./paths.ts";

/** A new image and the task that fills it (none while `uploading`). */
export interface CreatedImage {
  image: Image;
  task?: Task;
}

/**
 * Creates image `input.name` of `who` (input already schema-valid).
 * Throws InvalidError naming `file` (missing, not a regular file, a
 * symbolic link, over the size limit) or `url` (refused address),
 * ConflictError when `who` has an image of that name.
 */
export async function createImage(
  deps: ResourceDeps,
  who: Caller,
  input: ImageCreateInput,
): Promise<CreatedImage> {
  const { store, config } = deps;
  const cfg = imagesConfigOf(config);
  const ref = imageRef(who.name, input.name);
  const key = keys.image(ref);
  const exists = () =>
    new ConflictError(
      `Cannot create image ${input.name}: ${who.name} has an image of that name`,
    );
  if (await store.get(key, Image)) throw exists();
  const now = new Date();
  const at = now.toISOString();
  const base = { name: input.name, owner: who.name, public: false };
  let image: Image;
  let task: Task | undefined;
  let undo = () => Promise.resolve();
  if (input.file !== undefined) {
    const file = await takeUploadedFile(deps, who.name, input);
    undo = () => Deno.rename(file, uploadFile(cfg, who.name, input.file!));
    task = askedBy(importTask(config, ref, file, who.name, now), who);
    image = {
      ...base,
      state: "importing",
      source: { kind: "file", file: input.file },
      progress: 0,
      task: task.id,
      createdAt: at,
      updatedAt: at,
    };
  } else if (input.url !== undefined) {
    const why = cfg.allowPrivateUrls ? null : refusedUrl(new URL(input.url));
    if (why) throw new InvalidError("url", `Cannot fetch ${input.url}: ${why}`);
    task = newTask({
      kind: "image.fetch",
      target: "any",
      payload: { image: ref, url: input.url },
      owner: who.name,
      maxAttempts: config.tasks.maxAttempts,
      now,
      by: who,
    });
    image = {
      ...base,
      state: "importing",
      source: { kind: "url", url: input.url },
      progress: 0,
      task: task.id,
      createdAt: at,
      updatedAt: at,
    };
  } else {
    image = {
      ...base,
      state: "uploading",
      source: { kind: "upload" },
      createdAt: at,
      updatedAt: at,
    };
  }
  const txn = store.txn().ifAbsent(key).put(key, image);
  if (task) enqueue(txn, task);
  if ((await txn.commit()).ok) return { image, ...(task ? { task } : {}) };
  await undo().catch(() => {});
  throw exists();
}

/**
 * Moves `<uploadDir>/<user>/upload/<file>` to the user's staging file of
 * the image, where the user can no longer change it, and checks what was
 * moved: a regular file with one link, not over the size limit. A file
 * that fails is moved back. Returns the staging path.
 */
async function takeUploadedFile(
  { config }: ResourceDeps,
  owner: string,
  input: ImageCreateInput,
): Promise<string> {
  const cfg = imagesConfigOf(config);
  const src = uploadFile(cfg, owner, input.file!);
  const bad = (why: string) =>
    new InvalidError("file", `Cannot import ${input.file}: ${why}`);
  const dir = await Deno.lstat(uploadDirOf(cfg, owner)).catch(() => null);
  if (!dir?.isDirectory) throw bad(`${owner} has no upload directory`);
  const before = await Deno.lstat(src).catch(() => null);
  if (!before) throw bad("no such file in your upload directory");
  const problem = (st: Deno.FileInfo) =>
    st.isSymlink
      ? "it is a symbolic link"
      : !st.isFile
      ? "it is not a regular file"
      : (st.nlink ?? 1) > 1
      ? "it has other hard links"
      : st.size > cfg.maxUploadBytes
      ? `it has ${st.size} bytes, over the limit of ${cfg.maxUploadBytes}`
      : null;
  const early = problem(before);
  if (early) throw bad(early);
  await ensureIncoming(cfg, owner);
  const dest = incomingFile(cfg, owner, input.name);
  await Deno.rename(src, dest);
  // What was moved is checked again: it may have been swapped meanwhile.
  const why = problem(await Deno.lstat(dest));
  if (why) {
    await Deno.rename(dest, src).catch(() => {});
    throw bad(why);
  }
  return dest;
}
