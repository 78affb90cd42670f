/**
 * `/v1/images`: create (for an HTTP upload, an SFTP file or a URL), list,
 * show, delete, publish and unpublish images; the upload routes are
 * api/image_upload.ts. The handlers validate (zod) and call the image
 * resource (resources/images/); api/errors.ts maps what it throws. An
 * admin names another owner's image with `?owner=`.
 *
 * @example
 * ```ts
 * app.route("/v1/images", images({ store, config }));
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ImageCreateInput } from "../core/image_schemas.ts";
import { imageView, taskView } from "../resources/host_internals.ts";
import * as res from "../resources/images/mod.ts";
import { type Deps, router, TaskDoc } from "./env.ts";
import { errorResponses } from "./errors.ts";
import { ImageDoc, ImageParams, OwnerQuery } from "./image_params.ts";
import { imageUpload } from "./image_upload.ts";

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const ImageAndTask = z.object({ image: ImageDoc, task: TaskDoc.optional() })
  .openapi("ImageAndTask");

const createImage = createRoute({
  method: "post",
  path: "/",
  summary: "Create an image",
  description: "Without a source the image is `uploading`: send its bytes " +
    "with `PUT /v1/images/{name}/upload`. `file`: a file name in the " +
    "caller's upload directory (SFTP); `url`: http or https, fetched on a " +
    "host (loopback, link-local, private and metadata addresses are " +
    "refused unless the admin allows private URLs). Both start the import.",
  request: {
    body: {
      required: true,
      content: { "application/json": { schema: ImageCreateInput } },
    },
  },
  responses: {
    201: json(ImageAndTask, "Image created (with its task unless uploading)"),
    ...errorResponses(400, 409, 415, 503),
  },
});

const listImages = createRoute({
  method: "get",
  path: "/",
  summary: "List images (the caller's and the published ones)",
  responses: {
    200: json(z.object({ items: z.array(ImageDoc) }), "Images"),
    ...errorResponses(503),
  },
});

const showImage = createRoute({
  method: "get",
  path: "/{name}",
  summary: "Show an image (the caller's, else a published one of that name)",
  request: { params: ImageParams, query: OwnerQuery },
  responses: {
    200: json(ImageDoc, "The image"),
    ...errorResponses(400, 404, 503),
  },
});

const deleteImage = createRoute({
  method: "delete",
  path: "/{name}",
  summary: "Delete an image (refused while VMs use it)",
  request: { params: ImageParams, query: OwnerQuery },
  responses: {
    200: json(z.object({ deleted: z.string() }), "Image deleted"),
    ...errorResponses(400, 403, 404, 409, 503),
  },
});

const publishRoute = (publish: boolean) =>
  createRoute({
    method: "post",
    path: publish ? "/{name}/publish" : "/{name}/unpublish",
    summary: publish
      ? "Publish an image: every user may create VMs from it (admin)"
      : "Unpublish an image (admin)",
    request: { params: ImageParams, query: OwnerQuery },
    responses: {
      200: json(ImageDoc, publish ? "Image published" : "Image unpublished"),
      ...errorResponses(400, 403, 404, 409, 503),
    },
  });

/** Builds the `/v1/images` sub-app. */
export function images(deps: Deps) {
  const { store } = deps;
  const publish = (value: boolean) =>
    router().openapi(publishRoute(value), async (c) => {
      const { name } = c.req.valid("param");
      const { owner } = c.req.valid("query");
      const img = await res.publishImage(
        store,
        c.get("principal"),
        name,
        value,
        owner,
      );
      return c.json(imageView(c.get("principal"), img), 200);
    });
  return router()
    .openapi(createImage, async (c) => {
      const who = c.get("principal");
      const made = await res.createImage(deps, who, c.req.valid("json"));
      return c.json({
        image: imageView(who, made.image),
        ...(made.task ? { task: taskView(who, made.task) } : {}),
      }, 201);
    })
    .openapi(listImages, async (c) => {
      const who = c.get("principal");
      const items = await res.listImages(store, who);
      return c.json({ items: items.map((i) => imageView(who, i)) }, 200);
    })
    .route("/", imageUpload(deps))
    .openapi(showImage, async (c) => {
      const { name } = c.req.valid("param");
      const { owner } = c.req.valid("query");
      const who = c.get("principal");
      const img = await res.findImage(store, who, name, owner);
      return c.json(imageView(who, img.value), 200);
    })
    .openapi(deleteImage, async (c) => {
      const { name } = c.req.valid("param");
      const { owner } = c.req.valid("query");
      await res.deleteImage(deps, c.get("principal"), name, owner);
      return c.json({ deleted: name }, 200);
    })
    .route("/", publish(true))
    .route("/", publish(false));
}
