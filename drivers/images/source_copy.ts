/**
 * Copies an uploaded file into the store's own directory, hashing it on the
 * way: the rules then run on the copy, which nobody else can change, never
 * on the user's file. The source is opened without following a symlink
 * (`O_NOFOLLOW`) and without blocking on a FIFO (`O_NONBLOCK`), and must be
 * a regular file with one link: a user who can write the upload directory
 * cannot make the import read a host file or another user's.
 *
 * @example
 * ```ts
 * const { sha256 } = await copySource(src, tmp, { maxBytes, onProgress });
 * ```
 */
import { createHash } from "node:crypto";
import { constants, promises as fsp } from "node:fs";
import { ImageRejected, type ImportProgress } from "../../tasks/image_store.ts";
import {
  checkQcow2,
  checkQcow2Header,
  parseQcow2Header,
} from "./qcow2_check.ts";

const CHUNK = 4 * 1024 * 1024;
/** The copy is flushed every so many bytes while later chunks are copied. */
const FLUSH_EVERY = 32 * 1024 * 1024;

/** Options of {@linkcode copySource}. */
export interface CopyOptions {
  /** A larger source is refused (images.maxUploadBytes). */
  maxBytes: number;
  /** The header of the source is checked before copying (fast refusal). */
  maxVirtualBytes: number;
  onProgress: ImportProgress;
  signal?: AbortSignal;
}

async function openSource(src: string): Promise<fsp.FileHandle> {
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW |
    constants.O_NONBLOCK;
  let h: fsp.FileHandle;
  try {
    h = await fsp.open(src, flags);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ENOENT") throw new ImageRejected(`the file is not there`);
    if (code === "ELOOP") {
      throw new ImageRejected("the file is a symbolic link (refused)");
    }
    throw err;
  }
  const st = await h.stat();
  if (!st.isFile()) {
    await h.close();
    throw new ImageRejected("not a regular file (refused)");
  }
  if (st.nlink !== 1) {
    await h.close();
    throw new ImageRejected(`the file has ${st.nlink} hard links (refused)`);
  }
  return h;
}

/**
 * Copies the open source `h` (`size` bytes when checked) into the new file
 * `dest`, hashing it: while chunk n is hashed and written, chunk n+1 is
 * read, and a second handle of `dest` flushes what was written so far (the
 * last flush is then short). A chunk's buffer is read into again only once
 * its write and its hash are done, so the hash is over the bytes written.
 * Every operation started has ended when this returns or throws.
 */
async function copyHashed(
  h: fsp.FileHandle,
  dest: string,
  size: number,
  o: CopyOptions,
): Promise<{ sha256: string; bytes: number }> {
  using out = await Deno.open(dest, {
    write: true,
    createNew: true,
    mode: 0o600,
  });
  using flusher = await Deno.open(dest, { write: true });
  const hash = createHash("sha256");
  const bufs = [new Uint8Array(CHUNK), new Uint8Array(CHUNK)];
  let reading = started(h.read(bufs[0], 0, CHUNK, 0));
  let writing = Promise.resolve();
  let flushing = Promise.resolve();
  let copied = 0;
  let flushed = 0;
  let percent = -1;
  try {
    for (let i = 0;; i ^= 1) {
      const { bytesRead: n } = await reading;
      if (n === 0) break;
      copied += n;
      if (copied > o.maxBytes) {
        throw new ImageRejected(
          `the file grew over the limit of ${o.maxBytes} bytes while copied`,
        );
      }
      o.signal?.throwIfAborted();
      await writing; // of the other buffer, which is read into next
      reading = started(h.read(bufs[i ^ 1], 0, CHUNK, copied));
      const chunk = bufs[i].subarray(0, n);
      writing = started(writeAll(out, chunk));
      hash.update(chunk);
      if (copied - flushed >= FLUSH_EVERY) {
        await flushing;
        flushing = started(flusher.syncData());
        flushed = copied;
      }
      const p = Math.min(100, Math.floor((copied * 100) / Math.max(size, 1)));
      if (p !== percent) await o.onProgress(percent = p);
    }
    await writing;
    await flushing;
    await out.sync();
    return { sha256: hash.digest("hex"), bytes: copied };
  } finally {
    await Promise.allSettled([reading, writing, flushing]);
  }
}

/**
 * Marks `p` handled, so that a failure while the loop awaits something else
 * is no unhandled rejection; the loop awaits `p` later and gets the error.
 */
function started<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

async function writeAll(out: Deno.FsFile, chunk: Uint8Array): Promise<void> {
  for (let off = 0; off < chunk.length;) {
    off += await out.write(chunk.subarray(off));
  }
}

/**
 * Copies `src` to the new file `dest` (created 0600, must not exist);
 * returns the SHA-256 of the bytes copied and their count. Refuses (with
 * {@linkcode ImageRejected}) a source that is not a plain file, is larger
 * than `maxBytes`, or whose header breaks the qcow2 rules. `onProgress`
 * gets each new whole percent.
 */
export async function copySource(
  src: string,
  dest: string,
  o: CopyOptions,
): Promise<{ sha256: string; bytes: number }> {
  const h = await openSource(src);
  try {
    const { size } = await h.stat();
    if (size > o.maxBytes) {
      throw new ImageRejected(
        `the file has ${size} bytes, over the limit of ${o.maxBytes} ` +
          `(images.maxUploadBytes)`,
      );
    }
    const head = new Uint8Array(Math.min(size, 2 * 1024 * 1024));
    const { bytesRead } = await h.read(head, 0, head.length, 0);
    checkQcow2Header(parseQcow2Header(head.subarray(0, bytesRead)), o);
    return await copyHashed(h, dest, size, o);
  } finally {
    await h.close();
  }
}

/** A copy of an upload that passed every qcow2 rule. */
export interface CheckedCopy {
  /** The copy (0600, in the store's own temp directory). */
  path: string;
  /** Hex SHA-256 of the upload's bytes. */
  sha256: string;
  virtualSize: number;
}

/**
 * Copies `src` into a new file of `tmpDir` ({@linkcode copySource}), runs
 * every rule on the copy (`checkQcow2`, drivers/images/qcow2_check.ts), and
 * gives it to `store` (which may rename it away); the copy is removed on
 * every path. Throws {@linkcode ImageRejected} for a refused file. Both
 * stores import through this, so their rules are the same.
 */
export async function withCheckedCopy<T>(
  src: string,
  tmpDir: string,
  o: CopyOptions,
  store: (copy: CheckedCopy) => Promise<T>,
): Promise<T> {
  await Deno.mkdir(tmpDir, { recursive: true, mode: 0o700 });
  const path = `${tmpDir}/${crypto.randomUUID()}.qcow2`;
  try {
    const { sha256 } = await copySource(src, path, o);
    const { virtualSize } = await checkQcow2(path, {
      maxVirtualBytes: o.maxVirtualBytes,
      signal: o.signal,
    });
    return await store({ path, sha256, virtualSize });
  } finally {
    await Deno.remove(path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

/** The SHA-256 of a file the store holds (hex). */
export async function sha256File(path: string): Promise<string> {
  using f = await Deno.open(path);
  const hash = createHash("sha256");
  const buf = new Uint8Array(CHUNK);
  while (true) {
    const n = await f.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}
