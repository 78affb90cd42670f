/**
 * `PUT /v1/images/{name}/upload` and `GET` (or `HEAD`) of the same path:
 * an image's bytes over HTTP, streamed to the upload area
 * (resources/images/upload.ts), resumable with `Content-Range: bytes
 * START-END/TOTAL` from the offset that `GET` tells (also in the
 * `Upload-Offset` header of every answer). Past `images.maxUploadBytes`:
 * 413 and nothing kept; a range that does not start at the offset: 416.
 * app.ts exempts this path from the JSON body limit.
 *
 * @example
 * ```sh
 * curl -X PUT -H 'Content-Range: bytes 0-8388607/20000000' --data-binary @chunk0 \
 *   $API/v1/images/deb12/upload
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { InvalidError } from "../core/errors.ts";
import { imageView } from "../resources/host_internals.ts";
import * as res from "../resources/images/mod.ts";
import { type AppEnv, type Deps, router } from "./env.ts";
import { errorJson, errorResponses } from "./errors.ts";
import { ImageDoc, ImageParams, OwnerQuery } from "./image_params.ts";

/** The path that app.ts exempts from the JSON body limit. */
export const UPLOAD_PATH_RE = /^\/v1\/images\/[^/]+\/upload$/;

const UploadState = z.object({
  offset: z.number().int().describe("Bytes received so far"),
  complete: z.boolean().describe("All bytes are in: the image is importing"),
  image: ImageDoc,
}).openapi("UploadState");

const RangeHeaders = z.object({
  "Content-Range": z.string().optional().openapi({
    description: "bytes START-END/TOTAL (END inclusive); absent: the whole " +
      "image in this request",
    example: "bytes 0-8388607/20000000",
  }),
});

const state = {
  description: "Where the upload stands",
  content: { "application/json": { schema: UploadState } },
  headers: z.object({ "Upload-Offset": z.string() }),
};

const putUpload = createRoute({
  method: "put",
  path: "/{name}/upload",
  summary: "Upload an image's bytes (streamed; resumable with Content-Range)",
  request: {
    params: ImageParams,
    query: OwnerQuery,
    headers: RangeHeaders,
    body: {
      required: true,
      content: {
        "application/octet-stream": {
          schema: z.string().openapi({ format: "binary" }),
        },
      },
    },
  },
  responses: {
    200: state,
    ...errorResponses(400, 403, 404, 409, 413, 416, 503),
  },
});

const getUpload = createRoute({
  method: "get",
  path: "/{name}/upload",
  summary: "How many bytes of an upload are received (HEAD works too)",
  request: { params: ImageParams, query: OwnerQuery },
  responses: {
    200: state,
    ...errorResponses(400, 403, 404, 503),
  },
});

/** Parses `Content-Range: bytes START-END/TOTAL`; InvalidError otherwise. */
export function parseContentRange(text: string): res.ByteRange {
  const m = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/.exec(text.trim());
  const [start, end, total] = m ? m.slice(1).map(Number) : [];
  if (!m || start > end || end >= total) {
    throw new InvalidError(
      "Content-Range",
      `Content-Range must be "bytes START-END/TOTAL" with START <= END < TOTAL, got "${text}"`,
    );
  }
  return { start, end, total };
}

/** Maps the upload's own errors: 413 over the limit, 416 a wrong offset. */
function uploadError(c: Context<AppEnv>, err: unknown): Response {
  if (err instanceof res.TooLargeError) return errorJson(c, 413, err.message);
  if (err instanceof res.OffsetError) {
    c.header("Upload-Offset", String(err.offset));
    return errorJson(c, 416, err.message, "Content-Range");
  }
  throw err;
}

/** Builds the upload routes of the `/v1/images` sub-app. */
export function imageUpload(deps: Deps) {
  return router()
    .openapi(putUpload, async (c) => {
      const { name } = c.req.valid("param");
      const { owner } = c.req.valid("query");
      const header = c.req.header("content-range");
      const length = c.req.header("content-length");
      try {
        const r = await res.receiveUpload(deps, c.get("principal"), name, {
          body: c.req.raw.body,
          range: header === undefined ? undefined : parseContentRange(header),
          length: length === undefined ? undefined : Number(length),
        }, owner);
        c.header("Upload-Offset", String(r.offset));
        return c.json(
          { ...r, image: imageView(c.get("principal"), r.image) },
          200,
        );
      } catch (err) {
        return uploadError(c, err) as never;
      }
    })
    .openapi(getUpload, async (c) => {
      const { name } = c.req.valid("param");
      const { owner } = c.req.valid("query");
      const who = c.get("principal");
      const r = await res.uploadOffset(deps, who, name, owner);
      c.header("Upload-Offset", String(r.offset));
      return c.json({ ...r, image: imageView(who, r.image) }, 200);
    });
}
