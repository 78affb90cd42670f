/**
 * Resolves the name of an image installed on the host by hand to what the
 * driver boots. Such images live in `<stateDir>/images/<name>/`: a kernel
 * (`vmlinux`, `bzImage` or `vmlinuz`) with optional `initrd.cpio.gz` and
 * `cmdline`. `scripts/build_guest.sh` builds the `tiny` test guest there.
 * A `disk.qcow2` there is not booted: every VM would write into the one
 * file. Disk images are imported (`ucloud image create`) and each VM gets
 * its own disk on them (tasks/vm_disk.ts).
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
  if (await exists(`${dir}/disk.qcow2`)) {
    throw new PermanentError(
      `Image ${name} on this host is a disk (${dir}/disk.qcow2), which VMs would share and write into: import it with ucloud image create --name ${name} and create VMs from that`,
    );
  }
  throw new PermanentError(
    `Image ${name} is not installed on this host (${dir}); for the test guest run: deno task guest`,
  );
}
