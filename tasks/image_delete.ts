/**
 * `image.delete` (target `any`, payload `{ store, storedAs }`): removes a
 * stored image from its store. The API deletes the image document and
 * enqueues this in one transaction (refusing while a VM uses the image), so
 * there is no document left to compare: the removal is idempotent.
 *
 * @example
 * ```ts
 * const task = newTask({ kind: "image.delete", target: "any",
 *   payload: { store: "file", storedAs: "alice/deb-t-1" } });
 * ```
 */
import { z } from "zod";
import { PermanentError, type TaskHandler } from "./context.ts";

const Payload = z.object({
  store: z.enum(["file", "rbd"]),
  storedAs: z.string().min(1),
});

export const imageDelete: TaskHandler = async (ctx) => {
  const parsed = Payload.safeParse(ctx.task.payload);
  if (!parsed.success) {
    throw new PermanentError(`Bad image.delete payload: ${parsed.error}`);
  }
  const { store: kind, storedAs } = parsed.data;
  const store = ctx.imageStore;
  if (!store) {
    throw new PermanentError(
      `Cannot remove ${storedAs}: no image store "${kind}" on ${ctx.host}`,
    );
  }
  if (store.kind !== kind) {
    throw new PermanentError(
      `Cannot remove ${storedAs}: it is in the ${kind} store, this worker has the ${store.kind} store`,
    );
  }
  await ctx.progress(`removing ${storedAs}`);
  await store.removeImage(storedAs, { signal: ctx.signal });
  return { result: { removed: storedAs, store: kind } };
};
