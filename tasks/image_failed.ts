/**
 * Marks an image `failed` with a reason after the task that fetched or
 * imported it gave up (its attempts used up, for example by workers that
 * died while running it), so it never stays `uploading` or `importing`.
 *
 * @example
 * ```ts
 * await imageFailed(store, "alice/deb", "image.import failed: ...", () =>
 *   store.txn().ifLease(keys.alive(host), lease));
 * ```
 */
import { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import type { Store, Txn } from "../core/store.ts";

/**
 * Sets image `ref` to `failed` with `reason` unless it is ready or failed
 * already; each write compares the image's revision, on `txn()` (a guard).
 */
export async function imageFailed(
  store: Store,
  ref: string,
  reason: string,
  txn: () => Txn,
): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const img = await store.get(keys.image(ref), Image);
    if (!img || img.value.state === "ready" || img.value.state === "failed") {
      return;
    }
    const { progress: _, ...rest } = img.value;
    const r = await txn().ifModRevision(img.key, img.modRevision).put(img.key, {
      ...rest,
      state: "failed",
      reason,
      updatedAt: new Date().toISOString(),
    }).commit();
    if (r.ok) return;
  }
}
