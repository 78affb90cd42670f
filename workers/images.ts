/**
 * Resolves an image name to what the driver boots. Images live in
 * `<stateDir>/images/<name>/`: a kernel (`vmlinux`, `bzImage` or
 * `vmlinuz`) with optional `initrd.cpio.gz` and `cmdline`, or a `disk.qcow2`.
 * `scripts/build_guest.sh` builds the `tiny` test guest there.
 *
 * @example
 * ```ts
 * const boot = await resolveImage("/var/lib/ucloud", "tiny");
 * ```
 */
import { type Boot, PermanentError } from "../tasks/context.ts";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

export async function resolveImage(
  stateDir: string,
  name: string,
): Promise<Boot> {
  const dir = `${stateDir}/images/${name}`;
  if (await exists(`${dir}/disk.qcow2`)) return { disk: `${dir}/disk.qcow2` };
  for (const k of ["vmlinux", "bzImage", "vmlinuz"]) {
    if (!(await exists(`${dir}/${k}`))) continue;
    const initrd = `${dir}/initrd.cpio.gz`;
    const cmdline = await Deno.readTextFile(`${dir}/cmdline`).catch(() => "");
    return {
      kernel: `${dir}/${k}`,
      ...(await exists(initrd) ? { initrd } : {}),
      ...(cmdline.trim() ? { append: cmdline.trim() } : {}),
    };
  }
  throw new PermanentError(
    `Image ${name} is not installed on this host (${dir}); for the test guest run: deno task guest`,
  );
}
