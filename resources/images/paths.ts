/**
 * Where image bytes wait before their import (issue 11 contract): a user's
 * SFTP files in `<uploadDir>/<user>/upload/`, HTTP uploads and URL
 * fetches in `<uploadDir>/.incoming/<user>/` (root-owned, outside every
 * chroot); and the `image.import` task that takes them from there.
 *
 * @example
 * ```ts
 * const cfg = imagesConfigOf(config);
 * partPath(cfg, "alice", "deb12"); // "/var/www/.incoming/alice/deb12.part"
 * ```
 */
import { ImagesConfig } from "../../core/config_images.ts";
import type { Task } from "../../core/schemas.ts";
import { newTask } from "../../core/task_doc.ts";
import type { ResourceDeps } from "../deps.ts";

/** The images section of `config`, its defaults when absent. */
export function imagesConfigOf(config: ResourceDeps["config"]): ImagesConfig {
  return config.images ?? ImagesConfig.parse({});
}

/** `dir` and the (slash-free) names under it as one path. */
const join = (dir: string, ...names: string[]) =>
  [dir.replace(/(.)\/+$/, "$1"), ...names].join("/");

/** `owner`'s writable SFTP upload directory. */
export function uploadDirOf(cfg: ImagesConfig, owner: string): string {
  return join(cfg.uploadDir, owner, "upload");
}

/** The file `name` in `owner`'s SFTP upload directory. */
export function uploadFile(
  cfg: ImagesConfig,
  owner: string,
  name: string,
): string {
  return join(uploadDirOf(cfg, owner), name);
}

/** `owner`'s staging directory of HTTP uploads and URL fetches. */
export function incomingDir(cfg: ImagesConfig, owner: string): string {
  return join(cfg.uploadDir, ".incoming", owner);
}

/** Where the bytes of image `name` of `owner` are complete: the import's file. */
export function incomingFile(
  cfg: ImagesConfig,
  owner: string,
  name: string,
): string {
  return join(incomingDir(cfg, owner), name);
}

/** Where an HTTP upload of image `name` grows until its last byte. */
export function partPath(
  cfg: ImagesConfig,
  owner: string,
  name: string,
): string {
  return `${incomingFile(cfg, owner, name)}.part`;
}

/** Creates `owner`'s staging directory (root only, mode 0700). */
export async function ensureIncoming(
  cfg: ImagesConfig,
  owner: string,
): Promise<string> {
  const dir = incomingDir(cfg, owner);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** The `image.import` task of image `ref` for the file at `file`. */
export function importTask(
  config: ResourceDeps["config"],
  ref: string,
  file: string,
  owner: string,
  now = new Date(),
): Task {
  return newTask({
    kind: "image.import",
    target: "any",
    payload: { image: ref, file },
    owner,
    maxAttempts: config.tasks.maxAttempts,
    now,
  });
}

/** Removes a file; one already gone is fine. */
export async function removeFile(path: string): Promise<void> {
  await Deno.remove(path).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}
