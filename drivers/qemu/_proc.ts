/** Looking at processes through /proc, safe against pid reuse. Internal. */

/**
 * The argv of `pid`, or null when there is no such process or it is a
 * zombie (dead, waiting to be reaped).
 */
export async function processArgs(pid: number): Promise<string[] | null> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // "<pid> (<comm>) <state> ...": comm may contain spaces and parentheses.
    const state = stat.slice(stat.lastIndexOf(")") + 2).charAt(0);
    if (state === "Z" || state === "X") return null;
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    if (cmdline === "") return null;
    return cmdline.replace(/\0$/, "").split("\0");
  } catch {
    return null;
  }
}

/** Whether `args` is the command line of the qemu that owns `pidfile`. */
export function ownsPidfile(args: string[] | null, pidfile: string): boolean {
  if (args === null) return false;
  const i = args.indexOf("-pidfile");
  return i >= 0 && args[i + 1] === pidfile;
}

/** The pid written in `pidfile`, or null when it is missing or garbled. */
export async function readPidfile(pidfile: string): Promise<number | null> {
  try {
    const pid = Number((await Deno.readTextFile(pidfile)).trim());
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Pids of the processes whose command line owns `pidfile` (see
 * {@linkcode ownsPidfile}): a qemu, or its launcher before it exec'd qemu.
 */
export async function pidsOwning(pidfile: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (ownsPidfile(await processArgs(pid), pidfile)) pids.push(pid);
  }
  return pids;
}
