/**
 * Reading images as a caller may see them: its own, the published ones of
 * others, every image for an admin. A user names an image by `name`: its
 * own of that name, else a published one (`resolveImage`); an admin may
 * name another owner's image with `owner`.
 *
 * @example
 * ```ts
 * const items = await listImages(store, who);
 * const img = await resolveImage(store, "alice", "deb12"); // null: no document
 * ```
 */
import { NotFoundError } from "../../core/errors.ts";
import { Image, imageRef } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import type { Kv, Store } from "../../core/store.ts";
import { type Caller, canSee } from "../deps.ts";

/**
 * Reads image `name` of `owner` (default: the caller) when `who` may see
 * it (its own, an admin, or published); NotFoundError otherwise, also when
 * it exists.
 */
export async function readImage(
  store: Store,
  who: Caller,
  name: string,
  owner = who.name,
): Promise<Kv<Image>> {
  const ref = imageRef(owner, name);
  const img = await store.get(keys.image(ref), Image);
  if (!img || !(img.value.public || canSee(who, owner))) {
    throw new NotFoundError("image", owner === who.name ? name : ref);
  }
  return img;
}

/**
 * The image document a VM of `user` names `name`: the user's own image of
 * that name, else a published one (the first by owner), else null (a name
 * of an image installed on the hosts by hand).
 */
export async function resolveImage(
  store: Store,
  user: string,
  name: string,
): Promise<Kv<Image> | null> {
  const own = await store.get(keys.image(imageRef(user, name)), Image);
  if (own) return own;
  const { items } = await store.list(keys.images, Image);
  return items.find((kv) => kv.value.public && kv.value.name === name) ??
    null;
}

/**
 * The image `who` names: with `owner`, that owner's (readImage); without,
 * its own of that name or a published one. NotFoundError when none.
 */
export async function findImage(
  store: Store,
  who: Caller,
  name: string,
  owner?: string,
): Promise<Kv<Image>> {
  if (owner !== undefined) return await readImage(store, who, name, owner);
  const img = await resolveImage(store, who.name, name);
  if (!img) throw new NotFoundError("image", name);
  return img;
}

/** The images `who` may see: its own and the published ones (all: admin). */
export async function listImages(store: Store, who: Caller): Promise<Image[]> {
  const { items } = await store.list(keys.images, Image);
  return items.map((kv) => kv.value)
    .filter((i) => i.public || canSee(who, i.owner));
}
