/**
 * The qemu-img calls of the image stores, through the one runner. Every call
 * names the format (`-f qcow2`, `-F qcow2`): a probed format is how a qcow2
 * file named raw, or a raw file holding a qcow2 header, made qemu read host
 * files (CVE-2024-32498). JSON output where qemu-img has one; a failure is a
 * {@linkcode QemuImgError} with qemu-img's own last words.
 *
 * @example
 * ```ts
 * const info = await qemuImgInfo("/srv/images/a.qcow2");
 * console.log(info.virtualSize, info.backingFile);
 * ```
 */
import { z } from "zod";
import { CommandError, run } from "../runner.ts";

const QEMU_IMG = "qemu-img";

/** A qemu-img call that failed; `message` names the command and why. */
export class QemuImgError extends Error {
  override name = "QemuImgError";
  /** qemu-img's exit code; null when it did not exit by itself. */
  readonly code: number | null;
  /** qemu-img's stderr lines, without the `qemu-img: ` prefix. */
  readonly lines: string[];

  constructor(command: string, err: CommandError) {
    const lines = err.stderr.split("\n").map((l) =>
      l.trim().replace(/^qemu-img: /, "")
    ).filter(Boolean);
    const why = lines.at(-1) ??
      (err.code === null ? err.message : `exit ${err.code}`);
    super(`qemu-img ${command} failed: ${why}`, { cause: err });
    this.code = err.code;
    this.lines = lines;
  }
}

const Info = z.object({
  format: z.string(),
  "virtual-size": z.number(),
  "actual-size": z.number().optional(),
  "backing-filename": z.string().optional(),
  "full-backing-filename": z.string().optional(),
  encrypted: z.boolean().optional(),
  "dirty-flag": z.boolean().optional(),
  "format-specific": z.object({
    type: z.string(),
    data: z.record(z.string(), z.unknown()),
  }).optional(),
});

/** What `qemu-img info -f qcow2` says of a file. */
export interface QemuImgInfo {
  format: string;
  virtualSize: number;
  /** The backing file the header names (never opened by `info`). */
  backingFile?: string;
  /** `encrypted: true`, or `encrypt` options in the format-specific data. */
  encrypted: boolean;
  /** The external data file of the format-specific data (`data-file`). */
  dataFile?: string;
  /** The header's corrupt bit (format-specific `corrupt`). */
  corrupt: boolean;
}

async function qemuImg(
  command: string,
  args: string[],
  opts: { signal?: AbortSignal; timeoutMs?: number },
): Promise<string> {
  try {
    const r = await run(QEMU_IMG, [command, ...args], {
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
    return r.stdout;
  } catch (err) {
    if (err instanceof CommandError) throw new QemuImgError(command, err);
    throw err;
  }
}

/**
 * `qemu-img info -f qcow2 --output=json -U`: opens only `path` itself (info
 * never follows a backing file; `-U` shares the lock of a disk in use).
 */
export async function qemuImgInfo(
  path: string,
  opts: { signal?: AbortSignal } = {},
): Promise<QemuImgInfo> {
  const out = await qemuImg(
    "info",
    ["-f", "qcow2", "--output=json", "-U", path],
    opts,
  );
  const r = Info.safeParse(JSON.parse(out));
  if (!r.success) {
    throw new Error(`qemu-img info of ${path}: unexpected output: ${r.error}`);
  }
  const i = r.data;
  const data = i["format-specific"]?.data ?? {};
  const dataFile = data["data-file"];
  return {
    format: i.format,
    virtualSize: i["virtual-size"],
    backingFile: i["full-backing-filename"] ?? i["backing-filename"],
    encrypted: i.encrypted === true || data.encrypt !== undefined,
    dataFile: typeof dataFile === "string" ? dataFile : undefined,
    corrupt: data.corrupt === true,
  };
}

/**
 * How `qemu-img check -f qcow2` judged a file: `clean`, `leaks` (clusters
 * allocated but unused: wasted space, harmless), `corrupt` (metadata that
 * contradicts itself), or `error` (the check could not finish). `detail`:
 * qemu-img's first lines about it.
 */
export interface QemuImgCheck {
  verdict: "clean" | "leaks" | "corrupt" | "error";
  detail: string;
}

/**
 * `qemu-img check -f qcow2 --output=json`. It opens the backing file of an
 * image that has one: call it only on files known to have none.
 */
export async function qemuImgCheck(
  path: string,
  opts: { signal?: AbortSignal } = {},
): Promise<QemuImgCheck> {
  try {
    const out = await qemuImg(
      "check",
      ["-f", "qcow2", "--output=json", path],
      { ...opts, timeoutMs: 600_000 },
    );
    const r = JSON.parse(out) as Record<string, unknown>;
    const errors = Number(r["check-errors"] ?? 0);
    return errors > 0
      ? { verdict: "error", detail: `${errors} check errors` }
      : { verdict: "clean", detail: "" };
  } catch (err) {
    if (!(err instanceof QemuImgError)) throw err;
    const detail = err.lines.slice(0, 3).join("; ");
    // qemu-img check: exit 2 corruptions, 3 only leaks, 1 not completed.
    if (err.code === 2) return { verdict: "corrupt", detail };
    if (err.code === 3) return { verdict: "leaks", detail };
    return { verdict: "error", detail: err.message };
  }
}

/**
 * `qemu-img create -f qcow2 -F qcow2 -b <backing> <path> [size]`: an overlay
 * whose reads fall through to `backing` (opened as qcow2, never probed);
 * `sizeBytes` absent: the backing file's size.
 */
export async function qemuImgCreateOverlay(
  path: string,
  backing: string,
  sizeBytes?: number,
  opts: { signal?: AbortSignal } = {},
): Promise<void> {
  await qemuImg("create", [
    "-q",
    "-f",
    "qcow2",
    "-F",
    "qcow2",
    "-b",
    backing,
    path,
    ...(sizeBytes === undefined ? [] : [String(sizeBytes)]),
  ], opts);
}
