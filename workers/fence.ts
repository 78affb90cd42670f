/**
 * The fence deadline file and the fencer process. The worker writes its
 * lease deadline (`monotonicMs()`: CLOCK_BOOTTIME ms, see core/clock.ts) to
 * `<runDir>/fence-deadline` after every acknowledged keep-alive. `runDir`
 * (`worker.runDir`, default under `/run/ucloud/`) is on tmpfs: a guest that
 * fills the state filesystem must not stop the deadline from moving on. A
 * small separate process, the fencer, started once per host with `setsid` so
 * it outlives the worker, kills every VM of the host when that deadline
 * passes: so VMs are fenced before the cluster restarts them elsewhere even
 * when the worker itself was killed (DESIGN.md rule 2). A worker restarted
 * within the deadline adopts its lease and moves the deadline on; the VMs
 * keep running; a running worker restarts a fencer that died (every monitor
 * pass). The fencer also caps the VMs' serial logs
 * (drivers/qemu/serial_log.ts): it runs whenever VMs do, worker or not.
 *
 * @example
 * ```ts
 * const fencer = fencerOptions(config, "qemu");
 * await writeDeadline(fencer.runDir, session.deadline);
 * await ensureFencer(fencer); // at the worker's start
 * await keepFencer(fencer, log); // every monitor pass
 * ```
 */
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/log.ts";

/** What the fencer of one host works on. */
export interface FencerOptions {
  /** VMs live in `<stateDir>/vms/<id>/`. */
  stateDir: string;
  /** The deadline and the fencer's pid file (tmpfs). */
  runDir: string;
  /** The VM driver's name: qemu or sim. */
  driver: string;
  /** `qemu.serialLogMaxBytes`. */
  serialLogMaxBytes: number;
}

/** The fencer options of this host's configuration. */
export function fencerOptions(config: Config, driver: string): FencerOptions {
  return {
    stateDir: config.stateDir,
    runDir: config.worker.runDir,
    driver,
    serialLogMaxBytes: config.qemu.serialLogMaxBytes,
  };
}

/** The deadline file of a run dir. */
export const deadlineFile = (runDir: string) => `${runDir}/fence-deadline`;
/** The file in which the fencer writes its pid. */
export const fencerPidFile = (runDir: string) => `${runDir}/fencer.pid`;
const FENCER = new URL("./fencer.ts", import.meta.url).pathname;
const START_TIMEOUT_MS = 10_000;

/** Atomically replaces the deadline file; creates `runDir` when missing. */
export async function writeDeadline(
  runDir: string,
  deadline: number,
): Promise<void> {
  const tmp = `${deadlineFile(runDir)}.${Deno.pid}.tmp`;
  try {
    await Deno.writeTextFile(tmp, String(deadline));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await Deno.mkdir(runDir, { recursive: true });
    await Deno.writeTextFile(tmp, String(deadline));
  }
  await Deno.rename(tmp, deadlineFile(runDir));
}

/** The deadline in the file, or null when there is none. */
export async function readDeadline(runDir: string): Promise<number | null> {
  try {
    const n = Number((await Deno.readTextFile(deadlineFile(runDir))).trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** The fencer's command line arguments after its script. */
export function fencerArgs(opts: FencerOptions): string[] {
  return [
    opts.stateDir,
    opts.driver,
    opts.runDir,
    String(opts.serialLogMaxBytes),
  ];
}

/** The inverse of {@linkcode fencerArgs}. */
export function parseFencerArgs(args: string[]): FencerOptions {
  const [stateDir, driver, runDir, max] = args;
  const serialLogMaxBytes = Number(max);
  if (
    !stateDir || !driver || !runDir || !Number.isSafeInteger(serialLogMaxBytes)
  ) {
    throw new TypeError(
      `Cannot start the fencer: usage: fencer.ts STATE_DIR DRIVER RUN_DIR SERIAL_LOG_MAX_BYTES, got ${
        JSON.stringify(args)
      }`,
    );
  }
  return { stateDir, driver, runDir, serialLogMaxBytes };
}

/** The arguments after the fencer script of process `pid`, or null. */
async function fencerArgsOf(pid: number): Promise<string[] | null> {
  try {
    const args = (await Deno.readTextFile(`/proc/${pid}/cmdline`))
      .split("\0").slice(0, -1);
    const i = args.indexOf(FENCER);
    return i < 0 ? null : args.slice(i + 1);
  } catch {
    return null;
  }
}

const same = (a: string[], b: string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** True when `pid` is a fencer started with exactly these options. */
async function isCurrentFencer(
  pid: number,
  opts: FencerOptions,
): Promise<boolean> {
  const args = pid > 1 ? await fencerArgsOf(pid) : null;
  return args !== null && same(args, fencerArgs(opts));
}

/** Every fencer process of `stateDir` (any version, any options). */
async function fencersOf(
  stateDir: string,
): Promise<{ pid: number; args: string[] }[]> {
  const found = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const args = await fencerArgsOf(Number(e.name));
    if (args?.[0] === stateDir) found.push({ pid: Number(e.name), args });
  }
  return found;
}

async function readPid(file: string): Promise<number> {
  return Number(await Deno.readTextFile(file).catch(() => "0")) || 0;
}

/**
 * Starts the host's fencer unless one with these options already runs;
 * returns its pid. Fencers of the same state dir started by another version
 * or with other options (their arguments differ) are killed first, so a
 * stale fencer never judges a deadline it does not understand (it scans
 * /proc for them). {@linkcode keepFencer} is the cheap periodic check.
 */
export async function ensureFencer(opts: FencerOptions): Promise<number> {
  const want = fencerArgs(opts);
  let current = 0;
  for (const f of await fencersOf(opts.stateDir)) {
    if (!current && same(f.args, want)) current = f.pid;
    else {
      try {
        Deno.kill(f.pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
  if (current) return current;
  // setsid -f: a new session, so signals to the worker's group spare it.
  await new Deno.Command("setsid", {
    args: ["-f", Deno.execPath(), "run", "-A", FENCER, ...want],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  const file = fencerPidFile(opts.runDir);
  const started = performance.now();
  while (performance.now() - started < START_TIMEOUT_MS) {
    const pid = await readPid(file);
    if (await isCurrentFencer(pid, opts)) return pid;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(
    `Cannot start the fencer for ${opts.stateDir}: no fencer wrote ${file} within ${START_TIMEOUT_MS} ms`,
  );
}

/**
 * The running worker's periodic check: when the fencer named by the pid
 * file is gone (SIGKILLed, crashed, exited), starts a new one, so the VMs
 * are fenced should the worker die later. Costs two small file reads when
 * the fencer runs; never throws (a failure is logged and retried next time).
 */
export async function keepFencer(
  opts: FencerOptions,
  log: Logger,
): Promise<void> {
  try {
    const old = await readPid(fencerPidFile(opts.runDir));
    if (await isCurrentFencer(old, opts)) return;
    const pid = await ensureFencer(opts);
    log.warn("the fencer was gone: started a new one", { old, pid });
  } catch (err) {
    log.error("cannot start the fencer", { error: String(err) });
  }
}

/**
 * Stops this host's fencer after an ordered shutdown (workers/shutdown.ts):
 * no VM is left to fence and no worker comes back. Waits up to 5 s for it
 * to exit; a fencer started with other options is left alone.
 */
export async function stopFencer(opts: FencerOptions): Promise<void> {
  const pid = await readPid(fencerPidFile(opts.runDir));
  if (!(await isCurrentFencer(pid, opts))) return;
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const started = performance.now();
  while (performance.now() - started < 5000) {
    if (!(await isCurrentFencer(pid, opts))) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
