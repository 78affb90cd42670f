/**
 * The fence deadline file and the fencer process. The worker writes its
 * lease deadline (`monotonicMs()`: CLOCK_BOOTTIME ms, see core/clock.ts) to
 * `<stateDir>/fence-deadline` after every
 * acknowledged keep-alive. A small separate process, the fencer, started
 * once per host with `setsid` so it outlives the worker, kills every VM of
 * the host when that deadline passes: so VMs are fenced before the cluster
 * restarts them elsewhere even when the worker itself was killed (DESIGN.md
 * rule 2). A worker restarted within the deadline adopts its lease and moves
 * the deadline on; the VMs keep running.
 *
 * @example
 * ```ts
 * await writeDeadline(stateDir, session.deadline);
 * await ensureFencer({ stateDir, driver: "qemu" });
 * ```
 */

export const deadlineFile = (stateDir: string) => `${stateDir}/fence-deadline`;
const pidFile = (stateDir: string) => `${stateDir}/fencer.pid`;
const FENCER = new URL("./fencer.ts", import.meta.url).pathname;

/** Atomically replaces the deadline file. */
export async function writeDeadline(
  stateDir: string,
  deadline: number,
): Promise<void> {
  const tmp = `${deadlineFile(stateDir)}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, String(deadline));
  await Deno.rename(tmp, deadlineFile(stateDir));
}

/** The deadline in the file, or null when there is none. */
export async function readDeadline(stateDir: string): Promise<number | null> {
  try {
    const n = Number((await Deno.readTextFile(deadlineFile(stateDir))).trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** True when `pid` is a fencer process for `stateDir`. */
async function isFencer(pid: number, stateDir: string): Promise<boolean> {
  try {
    const args = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0");
    return args.includes(FENCER) && args.includes(stateDir);
  } catch {
    return false;
  }
}

/** Starts the host's fencer unless one already runs; returns its pid. */
export async function ensureFencer(
  opts: { stateDir: string; driver: string },
): Promise<number> {
  const file = pidFile(opts.stateDir);
  const old = Number(await Deno.readTextFile(file).catch(() => "0"));
  if (old > 1 && await isFencer(old, opts.stateDir)) return old;
  // setsid -f: a new session, so signals to the worker's group spare it.
  await new Deno.Command("setsid", {
    args: [
      "-f",
      Deno.execPath(),
      "run",
      "-A",
      FENCER,
      opts.stateDir,
      opts.driver,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  for (let i = 0; i < 100; i++) {
    const pid = Number(await Deno.readTextFile(file).catch(() => "0"));
    if (pid > 1 && await isFencer(pid, opts.stateDir)) return pid;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Cannot start the fencer for ${opts.stateDir}`);
}
