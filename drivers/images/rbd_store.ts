/**
 * The RBD store (config `images.store: "rbd"`): images and VM disks in a
 * Ceph pool (config `images.rbd`). An import copies the upload into the
 * host's temp dir and runs the same qcow2 rules as the file store on the
 * copy (source_copy.ts `withCheckedCopy`), then converts it to a raw image
 * of the pool (`qemu-img convert -f qcow2 -O raw`: clones need raw),
 * snapshots and protects it; the upload's SHA-256 is kept in the image's
 * metadata, set last, so an image without it is a partial import. A VM's
 * disk is a clone of that snapshot with the exclusive lock, grown to the
 * VM's disk size; qemu opens it through librbd as `format=raw`.
 *
 * Pool names: `img.<storedAs, '/' as '.'>.<12 hex of its SHA-256>` (the
 * hash keeps two names apart that differ only in '/' or '.'), snapshot
 * `base`; VM disks `disk.<vmId>`.
 *
 * @example
 * ```ts
 * const store = RbdStore.fromConfig(config);
 * await store.importImage(upload, "alice/deb-t-1", async () => {});
 * const disk = await store.createDisk("vm-1", "alice/deb-t-1", 10);
 * // "rbd:ucloud/disk.vm-1:id=admin:conf=/etc/ceph/ceph.conf"
 * ```
 */
import { createHash } from "node:crypto";
import type { Config } from "../../core/config.ts";
import { PermanentError } from "../../tasks/context.ts";
import type {
  ImageStore,
  ImportProgress,
  StoredImage,
} from "../../tasks/image_store.ts";
import {
  cloneDisk,
  imageInfo,
  imageMeta,
  importQcow2,
  protectSnapshot,
  rbdFilename,
  type RbdPool,
  removeImage,
  setImageMeta,
  usedBytes,
} from "./rbd.ts";
import { addressIp, fenceImage } from "./rbd_fence.ts";
import { withCheckedCopy } from "./source_copy.ts";

/** Options of an {@linkcode RbdStore}. */
export interface RbdStoreOptions {
  pool: RbdPool;
  /** Where uploads are copied and checked before the convert (local). */
  tmpDir: string;
  /** The largest virtual size of an image (images.maxVirtualBytes). */
  maxVirtualBytes: number;
  /** The largest file imported (images.maxUploadBytes). */
  maxSourceBytes: number;
}

const SNAPSHOT = "base";
const SHA_KEY = "ucloud.sha256";
const GiB = 1024 ** 3;
/** Share of an import's progress that the copy and checks take. */
const COPY_SHARE = 0.6;
const PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Images and VM disks as RBD images of one pool. */
export class RbdStore implements ImageStore {
  readonly kind = "rbd";
  readonly diskFormat = "raw";
  readonly #o: RbdStoreOptions;

  constructor(opts: RbdStoreOptions) {
    this.#o = opts;
  }

  /** The store of `config` (images.rbd, the limits; temp dir in stateDir). */
  static fromConfig(config: Config): RbdStore {
    const rbd = config.images.rbd;
    return new RbdStore({
      pool: {
        pool: rbd.pool,
        conf: rbd.cephConf ?? "/etc/ceph/ceph.conf",
        user: rbd.user,
      },
      tmpDir: `${config.stateDir}/image-tmp`,
      maxVirtualBytes: config.images.maxVirtualBytes,
      maxSourceBytes: config.images.maxUploadBytes,
    });
  }

  /** The pool's image that holds `storedAs`. */
  imageName(storedAs: string): string {
    const parts = storedAs.split("/");
    if (parts.length > 2 || !parts.every((p) => PART.test(p))) {
      throw new TypeError(`Cannot use storedAs ${JSON.stringify(storedAs)}`);
    }
    const hash = createHash("sha256").update(storedAs).digest("hex");
    return `img.${parts.join(".").slice(0, 100)}.${hash.slice(0, 12)}`;
  }

  /** The pool's image that is VM `vmId`'s disk. */
  diskName(vmId: string): string {
    if (!PART.test(vmId) || vmId.length > 100) {
      throw new TypeError(`Cannot use VM id ${vmId}`);
    }
    return `disk.${vmId}`;
  }

  diskPath(vmId: string): string {
    return rbdFilename(this.#o.pool, this.diskName(vmId));
  }

  async importImage(
    src: string,
    storedAs: string,
    onProgress: ImportProgress,
    opts: { signal?: AbortSignal } = {},
  ): Promise<StoredImage> {
    const p = this.#o.pool;
    const image = this.imageName(storedAs);
    const sha = await imageMeta(p, image, SHA_KEY);
    if (sha) return await this.#describe(image, sha);
    // A run that died between the convert and the metadata left a part.
    await removeImage(p, image);
    const copy = {
      maxBytes: this.#o.maxSourceBytes,
      maxVirtualBytes: this.#o.maxVirtualBytes,
      onProgress: (percent: number) =>
        onProgress(Math.floor(percent * COPY_SHARE)),
      signal: opts.signal,
    };
    return await withCheckedCopy(src, this.#o.tmpDir, copy, async (c) => {
      await importQcow2(p, c.path, image, { signal: opts.signal });
      try {
        await protectSnapshot(p, image, SNAPSHOT);
        await setImageMeta(p, image, SHA_KEY, c.sha256);
      } catch (err) {
        await removeImage(p, image).catch(() => {});
        throw err;
      }
      await onProgress(100);
      return await this.#describe(image, c.sha256);
    });
  }

  async #describe(image: string, sha256: string): Promise<StoredImage> {
    const info = await imageInfo(this.#o.pool, image);
    if (!info) throw new Error(`rbd image ${image} vanished`);
    const storedSize = await usedBytes(this.#o.pool, image);
    return { format: "raw", virtualSize: info.size, storedSize, sha256 };
  }

  async removeImage(storedAs: string): Promise<void> {
    await removeImage(this.#o.pool, this.imageName(storedAs));
  }

  async createDisk(
    vmId: string,
    storedAs: string,
    sizeGiB?: number,
  ): Promise<string> {
    const p = this.#o.pool;
    const image = this.imageName(storedAs);
    const info = await imageInfo(p, image);
    if (!info || !await imageMeta(p, image, SHA_KEY)) {
      throw new PermanentError(
        `Cannot create the disk of ${vmId}: image ${storedAs} is not in rbd pool ${p.pool}`,
      );
    }
    const want = sizeGiB === undefined ? undefined : sizeGiB * GiB;
    if (want !== undefined && want < info.size) {
      throw new PermanentError(
        `Cannot create the disk of ${vmId}: ${sizeGiB} GiB is smaller than ` +
          `its image (${(info.size / GiB).toFixed(2)} GiB)`,
      );
    }
    await cloneDisk(
      p,
      { image, snapshot: SNAPSHOT },
      this.diskName(vmId),
      want,
    );
    return this.diskPath(vmId);
  }

  async removeDisk(vmId: string): Promise<void> {
    await removeImage(this.#o.pool, this.diskName(vmId));
  }

  /**
   * The storage fence of VM `vmId`'s disk: block-lists every client that
   * has it open or holds its lock from another host (an IP this host does
   * not have), and returns their addresses. A client of this host is the
   * VM's own qemu that the driver re-attaches to, or a dead one.
   */
  async fenceDisk(vmId: string): Promise<string[]> {
    const mine = new Set(
      Deno.networkInterfaces().map((i) => i.address.replace(/%.*$/, "")),
    );
    return await fenceImage(this.#o.pool, this.diskName(vmId), {
      spare: (address) => mine.has(addressIp(address)),
    });
  }
}
