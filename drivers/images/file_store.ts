/**
 * The file store: a directory shared by the hosts (NFS in production).
 * Images are `<dir>/images/<storedAs>.qcow2`, stored once and read-only
 * (0444); a VM's disk is `<dir>/disks/<vmId>.qcow2`, a qcow2 overlay on its
 * image (`-F qcow2`). An import copies the upload into `<dir>/tmp/`, checks
 * the copy (drivers/images/qcow2_check.ts), then renames it into place, so
 * the stored file is exactly the bytes that passed the checks.
 *
 * Measured (2 cores, load 4.4, a 256 MiB qcow2 in the page cache, scripts/
 * bench/image_import.ts): the import 440-470 MiB/s; `qemu-img convert -f
 * qcow2 -O qcow2` 1780-1860; `cp` + `sync` 1100-1190. The SHA-256 (about
 * 1300 MiB/s on one core) bounds it: the copy overlaps its reads, writes and
 * flushes with it (source_copy.ts). A plain copy keeps the stored file equal
 * to the upload (its sha256 checks it) and needs one read.
 *
 * @example
 * ```ts
 * const store = new FileStore({ dir: "/srv/ucloud", maxVirtualBytes: 2 ** 40,
 *   maxSourceBytes: 2 ** 34 });
 * const img = await store.importImage(upload, "alice/deb-t-1", async () => {});
 * const disk = await store.createDisk("vm-1", "alice/deb-t-1", 10);
 * ```
 */
import { dirname, resolve } from "node:path";
import type { Config } from "../../core/config.ts";
import { PermanentError } from "../../tasks/context.ts";
import type {
  ImageStore,
  ImportProgress,
  StoredImage,
} from "../../tasks/image_store.ts";
import { qemuImgCreateOverlay, QemuImgError, qemuImgInfo } from "./qemu_img.ts";
import { sha256File, withCheckedCopy } from "./source_copy.ts";

/** Options of a {@linkcode FileStore}. */
export interface FileStoreOptions {
  /** The store's directory (config `images.fileStoreDir`). */
  dir: string;
  /** The largest virtual size of an image (images.maxVirtualBytes). */
  maxVirtualBytes: number;
  /** The largest file imported (images.maxUploadBytes). */
  maxSourceBytes: number;
}

const PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const GiB = 1024 ** 3;

/** `<owner>/<name>-<suffix>` or one such part; no `..`, no other slash. */
function checkName(what: string, name: string): void {
  const parts = name.split("/");
  if (parts.length > 2 || !parts.every((p) => PART.test(p))) {
    throw new TypeError(`Cannot use ${what} ${JSON.stringify(name)}`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

async function removeIfThere(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** The file store's directory from the config. */
export function fileStoreDir(config: Config): string {
  return config.images.fileStoreDir ?? `${config.stateDir}/image-store`;
}

/** Images and VM disks as qcow2 files in one shared directory. */
export class FileStore implements ImageStore {
  readonly kind = "file";
  readonly diskFormat = "qcow2";
  readonly #o: FileStoreOptions;

  constructor(opts: FileStoreOptions) {
    this.#o = { ...opts, dir: resolve(opts.dir) };
  }

  /** The store of `config` (images.fileStoreDir and the limits). */
  static fromConfig(config: Config): FileStore {
    return new FileStore({
      dir: fileStoreDir(config),
      maxVirtualBytes: config.images.maxVirtualBytes,
      maxSourceBytes: config.images.maxUploadBytes,
    });
  }

  /** Where the image `storedAs` is. */
  imagePath(storedAs: string): string {
    checkName("storedAs", storedAs);
    return `${this.#o.dir}/images/${storedAs}.qcow2`;
  }

  diskPath(vmId: string): string {
    if (!PART.test(vmId)) throw new TypeError(`Cannot use VM id ${vmId}`);
    return `${this.#o.dir}/disks/${vmId}.qcow2`;
  }

  async importImage(
    src: string,
    storedAs: string,
    onProgress: ImportProgress,
    opts: { signal?: AbortSignal } = {},
  ): Promise<StoredImage> {
    const dest = this.imagePath(storedAs);
    if (await exists(dest)) return await this.#describe(dest, opts);
    const copy = {
      maxBytes: this.#o.maxSourceBytes,
      maxVirtualBytes: this.#o.maxVirtualBytes,
      onProgress,
      signal: opts.signal,
    };
    return await withCheckedCopy(src, `${this.#o.dir}/tmp`, copy, async (c) => {
      await Deno.chmod(c.path, 0o444);
      await Deno.mkdir(dirname(dest), { recursive: true, mode: 0o700 });
      await Deno.rename(c.path, dest);
      const { size } = await Deno.stat(dest);
      const { virtualSize, sha256 } = c;
      return { format: "qcow2", virtualSize, storedSize: size, sha256 };
    });
  }

  /** An image stored by an earlier run: read back what its import said. */
  async #describe(
    path: string,
    opts: { signal?: AbortSignal },
  ): Promise<StoredImage> {
    const { virtualSize } = await qemuImgInfo(path, opts);
    const { size } = await Deno.stat(path);
    const sha256 = await sha256File(path);
    return { format: "qcow2", virtualSize, storedSize: size, sha256 };
  }

  async removeImage(storedAs: string): Promise<void> {
    await removeIfThere(this.imagePath(storedAs));
  }

  async createDisk(
    vmId: string,
    storedAs: string,
    sizeGiB?: number,
    opts: { signal?: AbortSignal } = {},
  ): Promise<string> {
    const disk = this.diskPath(vmId);
    const image = this.imagePath(storedAs);
    if (await exists(disk)) {
      const info = await qemuImgInfo(disk, opts);
      if (info.backingFile !== image) {
        throw new Error(
          `Cannot create the disk of ${vmId}: ${disk} exists on another ` +
            `image (${info.backingFile ?? "none"})`,
        );
      }
      return disk;
    }
    const { virtualSize } = await qemuImgInfo(image, opts).catch((err) => {
      if (!(err instanceof QemuImgError)) throw err;
      throw new PermanentError(
        `Cannot create the disk of ${vmId}: image ${storedAs}: ${err.message}`,
      );
    });
    const want = sizeGiB === undefined ? undefined : sizeGiB * GiB;
    if (want !== undefined && want < virtualSize) {
      throw new PermanentError(
        `Cannot create the disk of ${vmId}: ${sizeGiB} GiB is smaller than ` +
          `its image (${(virtualSize / GiB).toFixed(2)} GiB)`,
      );
    }
    await Deno.mkdir(`${this.#o.dir}/disks`, { recursive: true, mode: 0o700 });
    const tmp = `${disk}.${crypto.randomUUID()}.tmp`;
    try {
      await qemuImgCreateOverlay(tmp, image, want, opts);
      // link() refuses an existing name: a disk made meanwhile is kept.
      await Deno.link(tmp, disk).catch((err) => {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      });
    } finally {
      await removeIfThere(tmp);
    }
    return disk;
  }

  async removeDisk(vmId: string): Promise<void> {
    await removeIfThere(this.diskPath(vmId));
  }
}
