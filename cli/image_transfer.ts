/**
 * Moving an image's bytes and waiting for its import: `uploadImage()`
 * sends a local file in chunks (`Content-Range`, 8 MiB by default) and,
 * after a broken connection or a refused offset, asks the API how many
 * bytes it has and goes on from there; a progress bar on stderr when it
 * is a terminal, one final line otherwise. `waitImage()` polls until the
 * image is ready or failed, showing the import's percent.
 *
 * @module
 */
import { type Image, orNull, type UploadState } from "./client.ts";
import type { WaitContext } from "./command.ts";
import { ApiError, CliError } from "./errors.ts";
import type { Output } from "./output.ts";
import { Progress } from "./wait.ts";

/** The bytes of one upload request. */
export const CHUNK_BYTES = 8 * 1024 * 1024;
/** How often one chunk is tried again after the connection broke. */
export const RETRIES = 5;

/** "26.7 MiB", "512 B": a size for people. */
export function formatSize(bytes: number | undefined): string {
  if (bytes === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let n = bytes;
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${n.toFixed(1)} ${units[u]}`;
}

/** A progress bar on a terminal; a final line elsewhere. */
class Bar {
  readonly #tty: boolean;
  readonly #began = Date.now();
  constructor(
    private readonly out: Output,
    private readonly name: string,
    private readonly total: number,
  ) {
    this.#tty = out.isTerminal?.() ?? false;
  }

  show(done: number): void {
    if (!this.#tty) return;
    const pct = Math.floor((done / this.total) * 100);
    const width = 30;
    const full = Math.round((done / this.total) * width);
    this.out.write(
      `\r\x1b[Kupload ${this.name} [${"#".repeat(full)}${
        "-".repeat(width - full)
      }] ${pct}% ${formatSize(done)} / ${formatSize(this.total)}`,
    );
  }

  end(done: number): void {
    const secs = ((Date.now() - this.#began) / 1000).toFixed(1);
    if (this.#tty) this.out.write("\n");
    else {
      this.out.write(
        `upload ${this.name}: ${formatSize(done)} of ${
          formatSize(this.total)
        } in ${secs}s\n`,
      );
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether `err` is worth trying again: no answer, 5xx, or a wrong offset. */
function retryable(err: unknown): boolean {
  if (err instanceof ApiError) return err.status >= 500 || err.status === 416;
  return err instanceof CliError;
}

/**
 * Uploads the file at `path` as image `name` (created when missing; a
 * started upload is resumed). Returns the final state: all bytes in, the
 * image importing. Throws `CliError` when the image is past uploading,
 * the file is empty, or the API stays away longer than the retries.
 */
export async function uploadImage(
  ctx: WaitContext,
  name: string,
  path: string,
  chunkBytes = CHUNK_BYTES,
): Promise<UploadState> {
  const { client, stderr, pollIntervalMs } = ctx;
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  if (size === 0) throw new CliError(`Cannot upload ${path}: it is empty`);
  let state = await orNull(client.images.offset(name));
  if (!state) {
    await client.images.create({ name });
    state = await client.images.offset(name);
  }
  if (state.complete) {
    throw new CliError(
      `Cannot upload to image ${name}: it is ${state.image.state}; its bytes are in already`,
    );
  }
  if (state.offset > size) {
    throw new CliError(
      `Cannot resume image ${name}: the API has ${state.offset} bytes, more than the ${size} of ${path}`,
    );
  }
  const bar = new Bar(stderr, name, size);
  let offset = state.offset;
  let failures = 0;
  try {
    while (!state.complete) {
      const bytes = new Uint8Array(Math.min(chunkBytes, size - offset));
      await file.seek(offset, Deno.SeekMode.Start);
      for (let at = 0; at < bytes.length;) {
        const n = await file.read(bytes.subarray(at));
        if (n === null) throw new CliError(`${path} shrank while uploading`);
        at += n;
      }
      try {
        state = await client.images.upload(name, bytes, offset, size);
        offset = state.offset;
        failures = 0;
        bar.show(offset);
      } catch (err) {
        if (!retryable(err) || ++failures > RETRIES) throw err;
        await sleep(pollIntervalMs * 2 ** failures);
        // Where to go on: what the API has received.
        state = await client.images.offset(name).catch((e) => {
          if (!retryable(e)) throw e;
          return { ...state!, offset };
        });
        offset = state.offset;
      }
    }
  } finally {
    bar.end(offset);
  }
  return state;
}

/** "importing 40%", "failed: not a qcow2 file", "ready". */
export function imageStatus(img: Image): string {
  if (img.state === "importing") return `importing ${img.progress ?? 0}%`;
  if (img.state === "failed") {
    return `failed: ${img.reason ?? "no reason given"}`;
  }
  return img.state;
}

/**
 * Polls image `name` until it is ready (returned) or failed (`CliError`
 * with the reason); one progress line on stderr at every change.
 */
export async function waitImage(
  { client, stderr, pollIntervalMs }: WaitContext,
  name: string,
  timeoutSeconds: number,
  owner?: string,
): Promise<Image> {
  const began = Date.now();
  const deadline = began + timeoutSeconds * 1000;
  const progress = new Progress(stderr);
  try {
    while (true) {
      const img = await client.images.get(name, owner);
      const elapsed = `[${((Date.now() - began) / 1000).toFixed(1)}s]`;
      progress.show(`image ${name}: ${imageStatus(img)}`, elapsed);
      if (img.state === "ready") return img;
      if (img.state === "failed") {
        throw new CliError(
          `image ${name} failed: ${img.reason ?? "no reason given"}`,
        );
      }
      if (Date.now() >= deadline) {
        throw new CliError(
          `Cannot wait longer than ${timeoutSeconds}s for image ${name}: it is ${img.state}. It goes on in the background: see 'ucloud image show ${name}'`,
        );
      }
      await sleep(Math.min(pollIntervalMs, deadline - Date.now()));
    }
  } finally {
    progress.end();
  }
}
