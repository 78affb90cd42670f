/**
 * Image stores (config `images.store`) and the qcow2 rules they apply.
 *
 * @example
 * ```ts
 * import { imageStoreOf } from "./drivers/images/mod.ts";
 * const store = imageStoreOf(config);
 * ```
 *
 * @module
 */
import type { Config } from "../../core/config.ts";
import type { ImageStore } from "../../tasks/image_store.ts";
import { FileStore } from "./file_store.ts";
import { RbdStore } from "./rbd_store.ts";

export {
  FileStore,
  fileStoreDir,
  type FileStoreOptions,
} from "./file_store.ts";
export { RbdStore, type RbdStoreOptions } from "./rbd_store.ts";
export {
  checkQcow2,
  checkQcow2Header,
  parseQcow2Header,
} from "./qcow2_check.ts";

/**
 * The image store `config` names; undefined for a store this build does not
 * have (its tasks then fail saying so).
 */
export function imageStoreOf(config: Config): ImageStore | undefined {
  if (config.images.store === "file") return FileStore.fromConfig(config);
  if (config.images.store === "rbd") return RbdStore.fromConfig(config);
  return undefined;
}
