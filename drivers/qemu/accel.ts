/**
 * Choosing the qemu accelerator.
 *
 * @module
 */

/** Where {@linkcode detectAccel} looks; the defaults are the real files. */
export interface DetectAccelOptions {
  kvmPath?: string;
  cpuinfoPath?: string;
}

/**
 * Resolves the configured accelerator mode. `"kvm"` and `"tcg"` are taken as
 * given; `"auto"` picks kvm only when `/dev/kvm` opens read-write AND the CPU
 * flags in `/proc/cpuinfo` include vmx or svm. (A paravirtual nested
 * `/dev/kvm` without those flags opens fine but hangs stock guest kernels.)
 *
 * @example
 * ```ts
 * const accel = await detectAccel("auto"); // "tcg" on a nested host
 * ```
 */
export async function detectAccel(
  mode: "kvm" | "tcg" | "auto",
  { kvmPath = "/dev/kvm", cpuinfoPath = "/proc/cpuinfo" }: DetectAccelOptions =
    {},
): Promise<"kvm" | "tcg"> {
  if (mode === "kvm" || mode === "tcg") return mode;
  if (mode !== "auto") {
    throw new TypeError(
      `Cannot detect accelerator: mode must be "kvm", "tcg" or "auto", got ${
        JSON.stringify(mode)
      }`,
    );
  }
  return await kvmOpens(kvmPath) && await hasVirtFlag(cpuinfoPath)
    ? "kvm"
    : "tcg";
}

async function kvmOpens(path: string): Promise<boolean> {
  try {
    const file = await Deno.open(path, { read: true, write: true });
    file.close();
    return true;
  } catch {
    return false;
  }
}

async function hasVirtFlag(path: string): Promise<boolean> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return false;
  }
  return text.split("\n").some((line) => {
    const match = /^flags\s*:(.*)$/.exec(line);
    return match !== null &&
      match[1].split(/\s+/).some((flag) => flag === "vmx" || flag === "svm");
  });
}
