/**
 * What the image API tests share: an app with the header auth on a fresh
 * store whose images config points at a temp upload directory, the users'
 * headers, and image documents written as the import would leave them.
 */
import { ConfigSchema } from "../../core/config.ts";
import { ImagesConfig } from "../../core/config_images.ts";
import { type Image, imageRef } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import type { Store } from "../../core/store.ts";
import { headerAuth } from "./api.ts";
import type { ApiEnv } from "./api_env.ts";

export const ALICE = { "x-user": "alice" };
export const BOB = { "x-user": "bob" };
export const ADMIN = { "x-user": "root/admin" };

/** An app whose uploads land under `uploadDir` (a temp dir). */
export function imageApp(
  env: ApiEnv,
  uploadDir: string,
  images: Partial<ImagesConfig> = {},
) {
  const config = {
    tasks: ConfigSchema.shape.tasks.parse(undefined),
    images: ImagesConfig.parse({ uploadDir, ...images }),
  };
  return { ...env.fresh({ auth: headerAuth, config }), config };
}

/** Writes image `name` of `owner` as a finished import leaves it. */
export async function putImage(
  store: Store,
  owner: string,
  name: string,
  more: Partial<Image> = {},
): Promise<Image> {
  const at = new Date().toISOString();
  const img: Image = {
    name,
    owner,
    public: false,
    state: "ready",
    source: { kind: "upload" },
    format: "qcow2",
    store: "file",
    storedAs: `${owner}/${name}-x1`,
    virtualSize: 1 << 30,
    storedSize: 1 << 20,
    sha256: "ab".repeat(32),
    createdAt: at,
    updatedAt: at,
    ...more,
  };
  await store.txn().put(keys.image(imageRef(owner, name)), img).commit();
  return img;
}
