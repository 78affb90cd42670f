/**
 * The rules a file must pass before a store takes it as an image. The
 * format is always named (`qemu-img ... -f qcow2`), never probed: a probed
 * format, and qcow2's backing and external data files, are how an uploaded
 * image made OpenStack read host files (CVE-2024-32498, OSSA-2024-001; also
 * CVE-2026-24708). So the header is read here first, before any qemu-img
 * opens the file (`qemu-img check` would open a backing file): the qcow2
 * magic `QFI\xfb`, no backing file, no external data file, no encryption,
 * no incompatible feature beyond the known ones, a virtual size within
 * `images.maxVirtualBytes`; then `qemu-img info -f qcow2` must agree and
 * `qemu-img check -f qcow2` must find no corruption.
 *
 * @example
 * ```ts
 * const { virtualSize } = await checkQcow2(path, { maxVirtualBytes: 2 ** 40 });
 * ```
 */
import { ImageRejected } from "../../tasks/image_store.ts";
import { qemuImgCheck, QemuImgError, qemuImgInfo } from "./qemu_img.ts";

/** The first bytes of every qcow2 file. */
export const QCOW2_MAGIC = Uint8Array.of(0x51, 0x46, 0x49, 0xfb);

/**
 * Incompatible feature bits qemu knows: dirty 0, corrupt 1, external data
 * file 2, compression type 3, extended L2 entries 4.
 */
const KNOWN_INCOMPATIBLE = 0b11111n;
const CORRUPT_BIT = 1n << 1n;
const DATA_FILE_BIT = 1n << 2n;

/** Header extensions that bring in another file or a key. */
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FULL_DISK_ENCRYPTION = 0x0537be77;
const EXT_DATA_FILE_NAME = 0x44415441;

/** The fields of a qcow2 header that the rules read. */
export interface Qcow2Header {
  version: number;
  /** The backing file's name; absent when the header names none. */
  backingFile?: string;
  clusterBits: number;
  virtualSize: bigint;
  cryptMethod: number;
  incompatible: bigint;
  /** Header extensions: type and data. */
  extensions: { type: number; data: Uint8Array }[];
}

/** How many bytes of a file {@linkcode parseQcow2Header} may need: one cluster. */
export const HEADER_READ_BYTES = 2 * 1024 * 1024;

const reject = (why: string): never => {
  throw new ImageRejected(why);
};

/**
 * Parses the header of a qcow2 file from its first bytes (at least the
 * first cluster, or the whole file when shorter); throws
 * {@linkcode ImageRejected} when they are not a qcow2 header.
 */
export function parseQcow2Header(bytes: Uint8Array): Qcow2Header {
  if (
    bytes.length < 4 || !QCOW2_MAGIC.every((b, i) => bytes[i] === b)
  ) {
    reject(
      "not a qcow2 image: the file does not start with the qcow2 magic " +
        "QFI\\xfb (raw data or another format; only qcow2 is imported)",
    );
  }
  if (bytes.length < 72) {
    reject(`not a qcow2 image: the file ends inside the qcow2 header`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = v.getUint32(4);
  if (version !== 2 && version !== 3) {
    reject(`unsupported qcow2 version ${version} (2 or 3 expected)`);
  }
  const clusterBits = v.getUint32(20);
  if (clusterBits < 9 || clusterBits > 21) {
    reject(`invalid qcow2 header: cluster_bits ${clusterBits}`);
  }
  const clusterSize = 2 ** clusterBits;
  const headerLength = version === 2 ? 72 : v.getUint32(100);
  if (
    version === 3 &&
    (bytes.length < 104 || headerLength < 104 || headerLength % 8 !== 0 ||
      headerLength > clusterSize)
  ) {
    reject(`invalid qcow2 header: header_length ${headerLength}`);
  }
  const header: Qcow2Header = {
    version,
    clusterBits,
    virtualSize: v.getBigUint64(24),
    cryptMethod: v.getUint32(32),
    incompatible: version === 2 ? 0n : v.getBigUint64(72),
    extensions: readExtensions(v, headerLength, clusterSize),
  };
  const backingOffset = v.getBigUint64(8);
  if (backingOffset !== 0n) {
    const size = v.getUint32(16);
    const start = Number(backingOffset);
    header.backingFile = start + size <= bytes.length && size <= 1023
      ? new TextDecoder().decode(bytes.subarray(start, start + size))
      : "(beyond the first cluster)";
  }
  return header;
}

function readExtensions(
  v: DataView,
  start: number,
  clusterSize: number,
): Qcow2Header["extensions"] {
  const end = Math.min(v.byteLength, clusterSize);
  const out: Qcow2Header["extensions"] = [];
  let at = start;
  while (true) {
    if (at + 8 > end) {
      reject("invalid qcow2 header: the header extensions do not end");
    }
    const type = v.getUint32(at);
    const length = v.getUint32(at + 4);
    if (type === 0) return out;
    if (at + 8 + length > end) {
      reject(`invalid qcow2 header: extension 0x${type.toString(16)} overruns`);
    }
    out.push({
      type,
      data: new Uint8Array(v.buffer, v.byteOffset + at + 8, length),
    });
    at += 8 + Math.ceil(length / 8) * 8;
  }
}

function bitsOf(mask: bigint): number[] {
  const bits: number[] = [];
  for (let i = 0n; i < 64n; i++) if (mask & (1n << i)) bits.push(Number(i));
  return bits;
}

const GiB = 1024 ** 3;

function sizeLimit(size: bigint | number, max: number): void {
  if (BigInt(size) > BigInt(max)) {
    const gib = (Number(size) / GiB).toFixed(1);
    reject(
      `the virtual size ${size} bytes (${gib} GiB) is over the limit of ` +
        `${max} bytes (images.maxVirtualBytes)`,
    );
  }
}

/**
 * The rules on a parsed header; throws {@linkcode ImageRejected} with the
 * first one it breaks.
 */
export function checkQcow2Header(
  h: Qcow2Header,
  limits: { maxVirtualBytes: number },
): void {
  if (h.backingFile !== undefined) {
    reject(
      `a qcow2 image with a backing file is refused (it names ` +
        `${JSON.stringify(h.backingFile)})`,
    );
  }
  const types = new Set(h.extensions.map((e) => e.type));
  if (types.has(EXT_BACKING_FORMAT)) {
    reject("a qcow2 image with a backing file format extension is refused");
  }
  const dataFile = h.extensions.find((e) => e.type === EXT_DATA_FILE_NAME);
  if (dataFile || h.incompatible & DATA_FILE_BIT) {
    const name = dataFile
      ? ` (it names ${JSON.stringify(new TextDecoder().decode(dataFile.data))})`
      : "";
    reject(`a qcow2 image with an external data file is refused${name}`);
  }
  if (h.cryptMethod !== 0 || types.has(EXT_FULL_DISK_ENCRYPTION)) {
    const how = ["none", "AES", "LUKS"][h.cryptMethod] ?? `${h.cryptMethod}`;
    reject(`an encrypted qcow2 image is refused (encryption: ${how})`);
  }
  const unknown = h.incompatible & ~KNOWN_INCOMPATIBLE;
  if (unknown) {
    reject(
      `the qcow2 image uses unknown incompatible features (header bits ` +
        `${bitsOf(unknown).join(", ")})`,
    );
  }
  if (h.incompatible & CORRUPT_BIT) {
    reject("the qcow2 image is marked corrupt (incompatible feature bit 1)");
  }
  sizeLimit(h.virtualSize, limits.maxVirtualBytes);
}

/** Reads the header bytes of an open file (from its start). */
export async function readHeaderBytes(file: Deno.FsFile): Promise<Uint8Array> {
  await file.seek(0, Deno.SeekMode.Start);
  const buf = new Uint8Array(HEADER_READ_BYTES);
  let n = 0;
  while (n < buf.length) {
    const got = await file.read(buf.subarray(n));
    if (got === null) break;
    n += got;
  }
  return buf.subarray(0, n);
}

/**
 * Every rule on the file at `path`: its header (read here), then
 * `qemu-img info -f qcow2` and `qemu-img check -f qcow2`. Returns the
 * virtual size; throws {@linkcode ImageRejected} with why it is refused.
 */
export async function checkQcow2(
  path: string,
  limits: { maxVirtualBytes: number; signal?: AbortSignal },
): Promise<{ virtualSize: number }> {
  using file = await Deno.open(path);
  checkQcow2Header(parseQcow2Header(await readHeaderBytes(file)), limits);
  const opts = { signal: limits.signal };
  const info = await qemuImgInfo(path, opts).catch((err) => {
    if (!(err instanceof QemuImgError)) throw err;
    return reject(`not a valid qcow2 image: ${err.message}`);
  });
  if (info.format !== "qcow2") reject(`not a qcow2 image: ${info.format}`);
  if (info.backingFile !== undefined) {
    reject(
      `a qcow2 image with a backing file is refused (${info.backingFile})`,
    );
  }
  if (info.dataFile !== undefined) {
    reject(
      `a qcow2 image with an external data file is refused (${info.dataFile})`,
    );
  }
  if (info.encrypted) reject("an encrypted qcow2 image is refused");
  if (info.corrupt) reject("the qcow2 image is marked corrupt");
  sizeLimit(info.virtualSize, limits.maxVirtualBytes);
  const check = await qemuImgCheck(path, opts);
  if (check.verdict === "corrupt") {
    reject(`the qcow2 image is corrupt (qemu-img check: ${check.detail})`);
  }
  if (check.verdict === "error") {
    reject(`the qcow2 image cannot be checked (${check.detail})`);
  }
  return { virtualSize: info.virtualSize };
}
