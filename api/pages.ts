/**
 * The query and answer of paged listings (`GET /v1/vms`, `GET /v1/tasks`):
 * `limit` (default 100, at most 1000) and `continue`, the opaque token of
 * the previous page; the answer keeps `items` and adds `continue`, null on
 * the last page. A page may hold fewer than `limit` items and still a
 * token (it read as many keys as one request may): follow `continue` until
 * it is null.
 *
 * @example
 * ```ts
 * const Query = PageQuery.extend({ owner: z.string().optional() });
 * json(pageOf(VmDoc, "VmPage"), "VMs visible to the caller");
 * ```
 */
import { z } from "@hono/zod-openapi";

/** Items per page unless `limit` says otherwise. */
export const DEFAULT_PAGE_LIMIT = 100;
/** The largest `limit`. */
export const MAX_PAGE_LIMIT = 1000;

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_LIMIT)
    .default(DEFAULT_PAGE_LIMIT),
  continue: z.string().min(1).max(2048).optional().openapi({
    description: "The `continue` of the previous page",
  }),
});

/** The answer of a paged listing of `item`, named `name` in the document. */
export function pageOf<T extends z.ZodType>(item: T, name: string) {
  return z.object({
    items: z.array(item),
    continue: z.string().nullable().openapi({
      description: "The token of the next page; null on the last page",
    }),
  }).openapi(name);
}
