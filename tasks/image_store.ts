/**
 * What task handlers need of an image store (config `images.store`): the
 * file store (drivers/images/file_store.ts) and Ceph RBD (rbd_store.ts)
 * implement it.
 * Here, beside the other driver interfaces of tasks/context.ts, so tasks/
 * never imports drivers/.
 *
 * @example
 * ```ts
 * try {
 *   const stored = await store.importImage(file, "alice/deb-t-1", onProgress);
 * } catch (err) {
 *   if (err instanceof ImageRejected) console.log(err.message); // why
 * }
 * ```
 */

/** What an import stored. */
export interface StoredImage {
  /** The format as stored: `qcow2` in the file store, `raw` in RBD. */
  format: "qcow2" | "raw";
  /** Bytes the guest sees. */
  virtualSize: number;
  /** Bytes the store uses. */
  storedSize: number;
  /** Hex SHA-256 of the file as uploaded. */
  sha256: string;
}

/** Called while an import copies; `percent` 0-100. Throwing stops it. */
export type ImportProgress = (percent: number) => Promise<void>;

/** An image store: stored images (read-only) and VM disks made from them. */
export interface ImageStore {
  /** Which store this is (an image's `store` field). */
  readonly kind: "file" | "rbd";
  /**
   * Checks the qcow2 file `src` and stores it as `storedAs` (unique per
   * import); throws {@linkcode ImageRejected} for a file it refuses, with
   * nothing left in the store. `src` is left for the caller to remove.
   * When `storedAs` is stored already (a rerun) it describes that.
   */
  importImage(
    src: string,
    storedAs: string,
    onProgress: ImportProgress,
    opts?: { signal?: AbortSignal },
  ): Promise<StoredImage>;
  /** Removes a stored image; one that is not there is fine. */
  removeImage(storedAs: string, opts?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Creates VM `vmId`'s own disk on the stored image (a copy-on-write
   * overlay or clone), of `sizeGiB` when given (not smaller than the
   * image); a disk already there is kept. Returns `diskPath(vmId)`.
   */
  createDisk(
    vmId: string,
    storedAs: string,
    sizeGiB?: number,
    opts?: { signal?: AbortSignal },
  ): Promise<string>;
  /** Removes VM `vmId`'s disk; one that is not there is fine. */
  removeDisk(vmId: string, opts?: { signal?: AbortSignal }): Promise<void>;
  /** Where VM `vmId`'s disk is, as qemu opens it. */
  diskPath(vmId: string): string;
  /** The format qemu must open a VM disk with: qcow2 (file) or raw (rbd). */
  readonly diskFormat: "qcow2" | "raw";
  /**
   * Stores whose disks other hosts can still write after their host failed
   * (RBD): fences every client of VM `vmId`'s disk on another host, before
   * this host opens it; returns the fenced clients' addresses.
   */
  fenceDisk?(vmId: string): Promise<string[]>;
}

/**
 * A file the store refuses to import (not qcow2, a backing or data file,
 * encryption, ...); the message says why, for the image's `reason`.
 */
export class ImageRejected extends Error {
  override name = "ImageRejected";
}
