/**
 * zod schemas of the documents of images and SSH keys (issue 11), beside
 * `schemas.ts`: `key/<owner>/<name>` holds an `SshKey`, `image/<owner>/<name>`
 * an `Image`. As there, the `*Input` schemas are strict (an unknown field is a
 * 400) and the document schemas keep unknown fields.
 *
 * An image is named `<owner>/<name>` inside ucloud (its `ref`); a user names
 * their own images by `name` alone, and published images of others by the
 * same `name` when they have none of that name.
 *
 * @example
 * ```ts
 * const input = SshKeyCreateInput.parse({ name: "k1", publicKey: line });
 * ```
 */
import { z } from "zod";
import { NAME_RE } from "./schemas.ts";

/** Input of `POST /v1/keys`: an OpenSSH public key line (`type base64 [comment]`). */
export const SshKeyCreateInput = z.object({
  name: z.string().regex(NAME_RE),
  publicKey: z.string().min(1).max(16 * 1024),
}).strict();
export type SshKeyCreateInput = z.infer<typeof SshKeyCreateInput>;

/** A user's SSH public key, validated (resources/keys). */
export const SshKey = z.object({
  name: z.string(),
  owner: z.string(),
  /** The key type, e.g. `ssh-ed25519`. */
  type: z.string(),
  /** The key line as sshd's authorized_keys takes it: `type base64 [comment]`. */
  publicKey: z.string(),
  /** `SHA256:` and the unpadded base64 of the blob's SHA-256, as `ssh-keygen -l`. */
  fingerprint: z.string(),
  comment: z.string().optional(),
  createdAt: z.string(),
});
export type SshKey = z.infer<typeof SshKey>;

/**
 * Where an image is in its life: `uploading` (waiting for its bytes through
 * HTTP), `importing` (the `image.import` task checks and stores it),
 * `ready` (VMs can use it), `failed` (`reason` says why; nothing stored).
 */
export const ImageState = z.enum(["uploading", "importing", "ready", "failed"]);
export type ImageState = z.infer<typeof ImageState>;

/**
 * Input of `POST /v1/images`: at most one source. `file`: a file name in the
 * caller's upload directory (never a path); `url`: http or https, fetched
 * on a host; neither: the bytes follow with `PUT /v1/images/{name}/upload`.
 */
export const ImageCreateInput = z.object({
  name: z.string().regex(NAME_RE),
  file: z.string().regex(/^[A-Za-z0-9._-]{1,255}$/).refine(
    (f) => f !== "." && f !== "..",
    "a file name, not a path",
  ).optional(),
  url: z.url({ protocol: /^https?$/ }).max(2048).optional(),
}).strict().refine((i) => !(i.file && i.url), {
  message: "give file or url, not both",
  path: ["url"],
});
export type ImageCreateInput = z.infer<typeof ImageCreateInput>;

/** An image: its source, state, and once ready what the store holds. */
export const Image = z.object({
  name: z.string(),
  owner: z.string(),
  /** Published by an admin: every user may create VMs from it. */
  public: z.boolean(),
  state: ImageState,
  /** Why it failed (state `failed`). */
  reason: z.string().optional(),
  source: z.discriminatedUnion("kind", [
    z.object({ kind: z.literal("upload") }),
    z.object({ kind: z.literal("file"), file: z.string() }),
    z.object({ kind: z.literal("url"), url: z.string() }),
  ]),
  /** The format as stored: `qcow2` in the file store, `raw` in RBD. */
  format: z.enum(["qcow2", "raw"]).optional(),
  /**
   * The store's name of the stored image, unique per import (for example
   * `<owner>/<name>-<random>`): a new image of the same name never meets the
   * files of a deleted one that `image.delete` has not removed yet.
   */
  storedAs: z.string().optional(),
  /** The store that holds it (config `images.store` at import). */
  store: z.enum(["file", "rbd"]).optional(),
  /** Bytes the guest sees. */
  virtualSize: z.number().int().optional(),
  /** Bytes the store uses. */
  storedSize: z.number().int().optional(),
  /** Hex SHA-256 of the imported qcow2 file as uploaded. */
  sha256: z.string().optional(),
  /** Import progress, 0-100 (state `importing`). */
  progress: z.number().min(0).max(100).optional(),
  /** The `image.import` task. */
  task: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Image = z.infer<typeof Image>;

/** An image's ref inside ucloud: `<owner>/<name>`. */
export function imageRef(owner: string, name: string): string {
  return `${owner}/${name}`;
}
