/**
 * What the image routes (api/images.ts, api/image_upload.ts) share: the
 * image document as an OpenAPI component, the `{name}` path parameter and
 * the `?owner=` query.
 */
import { z } from "@hono/zod-openapi";
import { Image } from "../core/image_schemas.ts";
import { NAME_RE } from "../core/schemas.ts";

/** The image document as a named OpenAPI component. */
export const ImageDoc = z.object(Image.shape).openapi("Image");

/** The `{name}` path parameter of an image. */
export const ImageParams = z.object({
  name: z.string().regex(
    NAME_RE,
    "name must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
  ).openapi({ param: { name: "name", in: "path" }, example: "debian-12" }),
});

/** `?owner=`: another owner's image (admins; anyone for a published one). */
export const OwnerQuery = z.object({
  owner: z.string().regex(NAME_RE, "owner must be a user name").optional()
    .openapi({ param: { name: "owner", in: "query" }, example: "alice" }),
});
