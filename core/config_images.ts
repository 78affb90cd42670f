/**
 * The `images` section of the configuration (core/config.ts): which store
 * holds images and VM disks, where users' uploads land, and the limits of
 * an import.
 *
 * @example
 * ```ts
 * const images = ImagesConfig.parse({ store: "file" });
 * ```
 */
import { z } from "zod";

const GiB = 1024 ** 3;

export const ImagesConfig = z.object({
  /** `file`: a directory shared by the hosts (NFS); `rbd`: a Ceph pool. */
  store: z.enum(["file", "rbd"]).default("file"),
  /** The file store's directory; default `<stateDir>/image-store`. */
  fileStoreDir: z.string().min(1).optional(),
  /**
   * Users' upload directories: `<uploadDir>/<user>/` (root-owned, the SFTP
   * chroot) with the writable `<uploadDir>/<user>/upload/`.
   */
  uploadDir: z.string().min(1).default("/var/www"),
  /** The largest upload (HTTP, SFTP file, URL) in bytes. */
  maxUploadBytes: z.number().int().min(1).default(20 * GiB),
  /** The largest virtual size an imported image may have, in bytes. */
  maxVirtualBytes: z.number().int().min(1).default(1024 * GiB),
  /** How long fetching an image from a URL may take. */
  urlTimeoutSeconds: z.number().int().min(1).default(3600),
  /** Admins may allow URLs to loopback, link-local and private addresses. */
  allowPrivateUrls: z.boolean().default(false),
  rbd: z.object({
    pool: z.string().min(1).default("ucloud"),
    /** ceph.conf of the cluster; default `/etc/ceph/ceph.conf`. */
    cephConf: z.string().min(1).optional(),
    /** The Ceph client id (without `client.`). */
    user: z.string().min(1).default("admin"),
  }).prefault({}),
});
export type ImagesConfig = z.infer<typeof ImagesConfig>;
