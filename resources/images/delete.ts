/**
 * Deleting and publishing images. A delete is refused while the image is
 * being imported and while a VM document names it (`imageRef`); otherwise the document goes, with the
 * `image.delete` task of what the store holds, in one transaction that
 * compares the image's revision and that no VM was created since the VMs
 * were read (a VM created meanwhile fails it, and the delete looks again).
 * Only admins publish (every user may then create VMs from the image) and
 * unpublish.
 *
 * @example
 * ```ts
 * await deleteImage(deps, who, "deb12"); // ConflictError while VMs use it
 * await publishImage(store, admin, "deb12", true, "alice");
 * ```
 */
import { ConflictError, ForbiddenError } from "../../core/errors.ts";
import { type Image, imageRef } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import { Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { enqueue, newTask } from "../../core/task_doc.ts";
import { type Caller, canSee, type ResourceDeps } from "../deps.ts";
import { imagesConfigOf, partPath, removeFile } from "./paths.ts";
import { readImage } from "./view.ts";

/** How often a delete is tried again after a VM was created meanwhile. */
const ATTEMPTS = 10;

/**
 * Deletes image `name` of `owner` (default: the caller). Throws
 * NotFoundError when `who` may not see it, ForbiddenError when it is not
 * `who`'s, ConflictError naming the VMs that use it.
 */
export async function deleteImage(
  { store, config }: ResourceDeps,
  who: Caller,
  name: string,
  owner = who.name,
): Promise<void> {
  const ref = imageRef(owner, name);
  for (let i = 0; i < ATTEMPTS; i++) {
    const img = await readImage(store, who, name, owner);
    if (!canSee(who, owner)) {
      throw new ForbiddenError(
        `Cannot delete image ${ref}: it is not ${who.name}'s`,
      );
    }
    if (img.value.state === "importing") {
      // Its task may be storing it right now: what it stores would outlive
      // an image.delete enqueued here. Imports end (ready or failed) within
      // their task timeout.
      throw new ConflictError(
        `Cannot delete image ${name}: it is being imported (task ${img.value.task}); delete it once it is ready or failed`,
      );
    }
    const { items, revision } = await store.list(keys.vms, Vm);
    const users = items.filter((v) => v.value.imageRef === ref)
      .map((v) => v.value.id);
    if (users.length) {
      throw new ConflictError(
        `Cannot delete image ${name}: VMs ${
          users.join(", ")
        } use it; delete them first`,
      );
    }
    const txn = store.txn().ifModRevision(img.key, img.modRevision)
      .ifNoneCreatedSince(keys.vms, revision)
      .delete(img.key);
    const { store: kind, storedAs } = img.value;
    if (kind && storedAs) {
      enqueue(
        txn,
        newTask({
          kind: "image.delete",
          target: "any",
          payload: { store: kind, storedAs },
          owner,
          maxAttempts: config.tasks.maxAttempts,
          by: who,
        }),
      );
    }
    if ((await txn.commit()).ok) {
      if (img.value.state === "uploading") {
        await removeFile(partPath(imagesConfigOf(config), owner, name));
      }
      return;
    }
  }
  throw new ConflictError(
    `Cannot delete image ${name}: it or the VMs changed ${ATTEMPTS} times while trying; try again`,
  );
}

/**
 * Publishes (`public` true) or unpublishes image `name` of `owner`; admins
 * only (ForbiddenError otherwise). Returns the image as written.
 */
export async function publishImage(
  store: Store,
  who: Caller,
  name: string,
  value: boolean,
  owner = who.name,
): Promise<Image> {
  if (!who.admin) {
    throw new ForbiddenError(
      `Cannot ${
        value ? "publish" : "unpublish"
      } image ${name}: ${who.name} is not an admin`,
    );
  }
  const img = await readImage(store, who, name, owner);
  const next = {
    ...img.value,
    public: value,
    updatedAt: new Date().toISOString(),
  };
  const r = await store.txn().ifModRevision(img.key, img.modRevision)
    .put(img.key, next).commit();
  if (!r.ok) {
    throw new ConflictError(
      `Cannot publish image ${name}: it changed meanwhile; try again`,
    );
  }
  return next;
}
