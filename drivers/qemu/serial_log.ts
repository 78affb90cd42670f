/**
 * The cap on VM serial logs: a guest can print without end, and its
 * `serial.log` must not fill the state filesystem. qemu appends to the log
 * (`logappend=on`: O_APPEND, see args.ts), so the log can be rotated in
 * place while qemu keeps it open (copy-truncate): its last `maxBytes` are
 * copied to `serial.log.1`, then it is truncated to zero and qemu's next
 * write lands at its start. What the guest prints between the copy and the
 * truncation (microseconds) is lost. Per VM at most `maxBytes` rotated plus
 * what the live log grows between two checks. The host's fencer runs the
 * check (workers/fencer.ts), so logs stay capped while the worker is down.
 *
 * @example
 * ```ts
 * await capSerialLogs("/var/lib/ucloud", 1 << 20); // ["vm-1"]: rotated
 * ```
 */

const CHUNK = 64 * 1024;

/** The rotated copy of a log. */
export const rotatedLog = (path: string) => `${path}.1`;

/**
 * Rotates `path` when it is larger than `maxBytes`; true when it did. The
 * log is truncated even when the copy fails (a full disk): losing old
 * output is better than filling the disk.
 */
export async function capLog(path: string, maxBytes: number): Promise<boolean> {
  let size: number;
  try {
    size = (await Deno.stat(path)).size;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
  if (size <= maxBytes) return false;
  try {
    await copyTail(path, rotatedLog(path), size - maxBytes, maxBytes);
  } finally {
    await Deno.truncate(path, 0);
  }
  return true;
}

/** Copies `length` bytes of `from` starting at `offset` over `to`. */
async function copyTail(
  from: string,
  to: string,
  offset: number,
  length: number,
): Promise<void> {
  using src = await Deno.open(from, { read: true });
  using dst = await Deno.open(to, {
    write: true,
    create: true,
    truncate: true,
  });
  await src.seek(offset, Deno.SeekMode.Start);
  const buf = new Uint8Array(Math.min(CHUNK, length));
  for (let left = length; left > 0;) {
    const n = await src.read(buf.subarray(0, Math.min(buf.length, left)));
    if (n === null) break;
    for (let done = 0; done < n;) {
      done += await dst.write(buf.subarray(done, n));
    }
    left -= n;
  }
}

/**
 * Caps `<stateDir>/vms/<id>/serial.log` and `qemu.log` (qemu's stderr: a
 * guest can make qemu warn) of every VM; returns the ids whose logs were
 * rotated. A VM whose log cannot be rotated does not stop the others.
 */
export async function capSerialLogs(
  stateDir: string,
  maxBytes: number,
): Promise<{ rotated: string[]; failed: Record<string, string> }> {
  const rotated: string[] = [];
  const failed: Record<string, string> = {};
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(`${stateDir}/vms`));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { rotated, failed };
    throw err;
  }
  for (const e of entries) {
    if (!e.isDirectory) continue;
    try {
      let any = false;
      for (const name of ["serial.log", "qemu.log"]) {
        any = await capLog(`${stateDir}/vms/${e.name}/${name}`, maxBytes) ||
          any;
      }
      if (any) rotated.push(e.name);
    } catch (err) {
      failed[e.name] = String(err);
    }
  }
  return { rotated: rotated.sort(), failed };
}
