/**
 * The image resource (issue 11): create an image document for an HTTP
 * upload, an SFTP file or a URL (create.ts), receive HTTP uploads
 * (upload.ts), delete and publish (delete.ts), read images as a caller
 * may and resolve the image a VM names (view.ts). Imports only core/; the
 * API (api/images.ts) and the VM resource call it; the tasks it enqueues
 * (`image.fetch`, `image.import`, `image.delete`) do the work on a host.
 *
 * @example
 * ```ts
 * import { createImage, resolveImage } from "../resources/images/mod.ts";
 * const { image } = await createImage({ store, config }, who, { name: "deb12" });
 * ```
 */
export { type CreatedImage, createImage } from "./create.ts";
export { deleteImage, publishImage } from "./delete.ts";
export {
  ensureIncoming,
  imagesConfigOf,
  importTask,
  incomingFile,
  partPath,
  removeFile,
} from "./paths.ts";
export {
  type ByteRange,
  OffsetError,
  receiveUpload,
  TooLargeError,
  uploadOffset,
  type UploadState,
} from "./upload.ts";
export { findImage, listImages, readImage, resolveImage } from "./view.ts";
