/**
 * Ceph RBD, the `rbd` image store: small wrappers over `qemu-img` and `rbd`.
 * An image is converted to raw in the pool (clones need raw), then
 * snapshotted and the snapshot protected; a VM disk is a clone of that
 * snapshot with the exclusive lock, resized to the VM's disk size; qemu opens
 * it through librbd. Fencing the clients of a disk: rbd_fence.ts.
 *
 * Every call on user data names the format (`-f qcow2 -O raw`); pool, image
 * and snapshot names are checked so they cannot smuggle options or a second
 * qemu filename part.
 *
 * @example
 * ```ts
 * const pool = { pool: "ucloud", conf: "/etc/ceph/ceph.conf", user: "admin" };
 * await importQcow2(pool, "/var/www/.incoming/alice/disk.qcow2", "img-1");
 * await protectSnapshot(pool, "img-1", "base");
 * await cloneDisk(pool, { image: "img-1", snapshot: "base" }, "vm-7", 10 * 1024 ** 3);
 * ```
 *
 * @module
 */
import { run } from "../runner.ts";
import { cli, EEXIST, ENOENT, isCode, type RbdPool, spec } from "./_rbd_cli.ts";

export type { RbdPool };

const rbd = (p: RbdPool, args: string[], options?: RbdRunOptions) =>
  cli("rbd", p, args, options);

/** What {@linkcode imageInfo} returns. */
export interface RbdImageInfo {
  size: number;
  features: string[];
  /** The snapshot this image is a clone of. */
  parent?: { image: string; snapshot: string };
}

/** Options of the calls that may run long. */
export interface RbdRunOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** The features every VM disk gets, whatever the cluster's defaults. */
export const DISK_FEATURES = [
  "layering",
  "exclusive-lock",
  "object-map",
  "fast-diff",
  "deep-flatten",
];

/**
 * The qemu filename of an image: `rbd:<pool>/<image>:id=<user>:conf=<conf>`,
 * for `qemu-img`, `qemu-io` and `-drive file=` (always with `format=raw`).
 *
 * @example
 * ```ts
 * rbdFilename({ pool: "ucloud", conf: "/c/ceph.conf", user: "admin" }, "vm-7");
 * // "rbd:ucloud/vm-7:id=admin:conf=/c/ceph.conf"
 * ```
 */
export function rbdFilename(p: RbdPool, image: string): string {
  if (/[:@\\]/.test(p.conf) || /[:@\\]/.test(p.user)) {
    throw new TypeError(
      `Cannot name rbd image ${image}: conf and user must not contain ':', '@' or '\\'`,
    );
  }
  return `rbd:${spec(p, image)}:id=${p.user}:conf=${p.conf}`;
}

/**
 * The image's size, features and parent, or null when there is no such image.
 *
 * @example
 * ```ts
 * const info = await imageInfo(pool, "vm-7"); // { size, features, parent }
 * ```
 */
export async function imageInfo(
  p: RbdPool,
  image: string,
): Promise<RbdImageInfo | null> {
  let out: string;
  try {
    out = await rbd(p, ["info", "--format", "json", spec(p, image)]);
  } catch (err) {
    if (isCode(err, ENOENT)) return null;
    throw err;
  }
  const info = JSON.parse(out);
  return {
    size: info.size,
    features: info.features,
    ...(info.parent
      ? { parent: { image: info.parent.image, snapshot: info.parent.snapshot } }
      : {}),
  };
}

/**
 * Converts a qcow2 file into a new raw image of the pool (`qemu-img convert
 * -f qcow2 -O raw`, sparse, 16 parallel requests). Fails when the image
 * exists; on any other failure the partial image is removed.
 *
 * @example
 * ```ts
 * await importQcow2(pool, "/tmp/disk.qcow2", "img-1", { timeoutMs: 3600_000 });
 * ```
 */
export async function importQcow2(
  p: RbdPool,
  file: string,
  image: string,
  { signal, timeoutMs = 3_600_000 }: RbdRunOptions = {},
): Promise<void> {
  if (await imageInfo(p, image)) {
    throw new Error(`Cannot import into rbd image ${image}: it exists`);
  }
  const target = rbdFilename(p, image);
  try {
    await run(
      "qemu-img",
      ["convert", "-f", "qcow2", "-O", "raw", "-W", "-m", "16", file, target],
      { signal, timeoutMs },
    );
  } catch (err) {
    await removeImage(p, image).catch(() => {});
    throw err;
  }
}

/**
 * Creates the snapshot (unless it exists) and protects it (unless it is), so
 * it can be cloned. Safe to run twice.
 *
 * @example
 * ```ts
 * await protectSnapshot(pool, "img-1", "base");
 * ```
 */
export async function protectSnapshot(
  p: RbdPool,
  image: string,
  snapshot: string,
): Promise<void> {
  const snap = spec(p, image, snapshot);
  try {
    await rbd(p, ["snap", "create", "--no-progress", snap]);
  } catch (err) {
    if (!isCode(err, EEXIST)) throw err;
  }
  const listed = await snapshots(p, image);
  if (listed.find((s) => s.name === snapshot)?.protected) return;
  await rbd(p, ["snap", "protect", snap]);
}

async function snapshots(
  p: RbdPool,
  image: string,
): Promise<{ name: string; protected: boolean }[]> {
  const out = await rbd(p, ["snap", "ls", "--format", "json", spec(p, image)]);
  return (JSON.parse(out) as { name: string; protected: string }[]).map((
    s,
  ) => ({ name: s.name, protected: s.protected === "true" }));
}

/**
 * Grows the image to `bytes`; shrinking is refused (it would cut the guest's
 * file system).
 *
 * @example
 * ```ts
 * await resizeImage(pool, "vm-7", 10 * 1024 ** 3);
 * ```
 */
export async function resizeImage(
  p: RbdPool,
  image: string,
  bytes: number,
): Promise<void> {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new RangeError(`Cannot resize rbd image ${image} to ${bytes} bytes`);
  }
  await rbd(p, [
    "resize",
    "--no-progress",
    "--size",
    `${bytes}B`,
    spec(p, image),
  ]);
}

/**
 * Creates a VM disk: a clone of a protected snapshot with
 * {@linkcode DISK_FEATURES} (the exclusive lock among them), grown to `bytes`
 * when that is larger than the image. Running it again for the same clone of
 * the same parent is a no-op; a disk of that name with another parent fails.
 *
 * @example
 * ```ts
 * await cloneDisk(pool, { image: "img-1", snapshot: "base" }, "vm-7", 10 * 1024 ** 3);
 * ```
 */
export async function cloneDisk(
  p: RbdPool,
  parent: { image: string; snapshot: string },
  disk: string,
  bytes?: number,
): Promise<void> {
  const existing = await imageInfo(p, disk);
  if (existing) {
    const same = existing.parent?.image === parent.image &&
      existing.parent.snapshot === parent.snapshot;
    if (!same) {
      throw new Error(
        `Cannot create rbd disk ${disk}: an image of that name exists and is not a clone of ${parent.image}@${parent.snapshot}`,
      );
    }
  } else {
    const features = DISK_FEATURES.flatMap((f) => ["--image-feature", f]);
    await rbd(p, [
      "clone",
      ...features,
      spec(p, parent.image, parent.snapshot),
      spec(p, disk),
    ]);
  }
  const size = existing?.size ?? (await imageInfo(p, disk))?.size ?? 0;
  if (bytes !== undefined && bytes > size) await resizeImage(p, disk, bytes);
}

/**
 * Removes an image: unprotects and removes its snapshots, then the image.
 * Idempotent (an absent image is not an error). Fails while a clone of one of
 * its snapshots exists or a client still has it open.
 *
 * @example
 * ```ts
 * await removeImage(pool, "vm-7");
 * ```
 */
export async function removeImage(p: RbdPool, image: string): Promise<void> {
  let snaps: { name: string; protected: boolean }[];
  try {
    snaps = await snapshots(p, image);
  } catch (err) {
    if (isCode(err, ENOENT)) return;
    throw err;
  }
  for (const s of snaps.filter((s) => s.protected)) {
    try {
      await rbd(p, ["snap", "unprotect", spec(p, image, s.name)]);
    } catch (err) {
      const children = await rbd(p, [
        "children",
        spec(p, image, s.name),
      ]).catch(() => "");
      throw new Error(
        `Cannot remove rbd image ${image}: snapshot ${s.name} has clones: ${
          children.trim().split("\n").join(", ") || "unknown"
        }`,
        { cause: err },
      );
    }
  }
  if (snaps.length) {
    await rbd(p, ["snap", "purge", "--no-progress", spec(p, image)]);
  }
  try {
    await rbd(p, ["rm", "--no-progress", spec(p, image)]);
  } catch (err) {
    if (!isCode(err, ENOENT)) throw err;
  }
}

/**
 * The value of the image's metadata `key` (`rbd image-meta get`), or null
 * when the image or the key is not there.
 *
 * @example
 * ```ts
 * await imageMeta(pool, "img-1", "ucloud.sha256"); // "9f86d0..."
 * ```
 */
export async function imageMeta(
  p: RbdPool,
  image: string,
  key: string,
): Promise<string | null> {
  try {
    return (await rbd(p, ["image-meta", "get", spec(p, image), metaKey(key)]))
      .trim();
  } catch (err) {
    if (isCode(err, ENOENT)) return null;
    throw err;
  }
}

/** Sets the image's metadata `key` to `value` (`rbd image-meta set`). */
export async function setImageMeta(
  p: RbdPool,
  image: string,
  key: string,
  value: string,
): Promise<void> {
  await rbd(p, ["image-meta", "set", spec(p, image), metaKey(key), value]);
}

function metaKey(key: string): string {
  if (!/^[a-z0-9._-]{1,64}$/.test(key)) {
    throw new TypeError(`Cannot use rbd metadata key ${JSON.stringify(key)}`);
  }
  return key;
}

/** Bytes the image uses in the pool, its snapshots included (`rbd du`). */
export async function usedBytes(p: RbdPool, image: string): Promise<number> {
  const out = await rbd(p, ["du", "--format", "json", spec(p, image)]);
  const { images } = JSON.parse(out) as {
    images: { name: string; used_size: number }[];
  };
  return images.filter((i) => i.name === image)
    .reduce((sum, i) => sum + i.used_size, 0);
}
