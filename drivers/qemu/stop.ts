/**
 * Stopping a qemu of the driver: the guest's own shutdown (ACPI power
 * button) with a timeout, and the hard stop: QMP `quit`, then SIGTERM, then
 * SIGKILL, each only while the handle's pid is still this VM's qemu (its
 * `-pidfile` argument), so a reused pid is never signalled. Internal.
 *
 * @example
 * ```ts
 * await stopQemu(handle, { timeoutMs: 30_000 }); // { how: "shutdown", ms: 812 }
 * await hardStop(handle, 3_000, signal); // resolves once the process is gone
 * ```
 *
 * @module
 */
import { delay } from "./_deadline.ts";
import { ownsPidfile, processArgs } from "./_proc.ts";
import { QmpClient, queryStatus } from "./qmp.ts";

/** The parts of a qemu handle that stopping needs. */
export interface StopTarget {
  pid: number;
  pidfile: string;
  qmp: string;
}

const KILL_WAIT_MS = 5_000;
const POLL_MS = 50;

/** Whether the target's pid is alive and is this VM's qemu. */
export async function alive(target: StopTarget): Promise<boolean> {
  return ownsPidfile(await processArgs(target.pid), target.pidfile);
}

/**
 * QMP `quit`, then SIGTERM, then SIGKILL, each given `graceMs`; resolves
 * once the process is gone (at once when it is gone already).
 */
export async function hardStop(
  target: StopTarget,
  graceMs: number,
  signal?: AbortSignal,
): Promise<void> {
  if (!await alive(target)) return;
  await quit(target, graceMs, signal);
  if (await waitGone(target, graceMs, signal)) return;
  await signalQemu(target, "SIGTERM");
  if (await waitGone(target, graceMs, signal)) return;
  await killQemu(target, signal);
}

/** SIGKILL and wait until gone; throws when it survives that. */
export async function killQemu(
  target: StopTarget,
  signal?: AbortSignal,
): Promise<void> {
  await signalQemu(target, "SIGKILL");
  if (!await waitGone(target, KILL_WAIT_MS, signal)) {
    throw new Error(
      `Cannot stop qemu pid ${target.pid}: still running after SIGKILL`,
    );
  }
}

/** True once the process is gone; false when `timeoutMs` passed first. */
export async function waitGone(
  target: StopTarget,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (await alive(target)) {
    if (Date.now() >= until) return false;
    await delay(POLL_MS, signal);
  }
  return true;
}

/** Sends `sig` to the target's pid if it is still this VM's qemu. */
async function signalQemu(target: StopTarget, sig: Deno.Signal): Promise<void> {
  if (!await alive(target)) return;
  try {
    Deno.kill(target.pid, sig);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

async function quit(
  target: StopTarget,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  try {
    const qmp = await QmpClient.connect(target.qmp, { signal, timeoutMs });
    try {
      await qmp.execute("quit", undefined, { signal, timeoutMs });
    } finally {
      await qmp.close();
    }
  } catch {
    // qemu may close the socket before replying; the wait decides
    signal?.throwIfAborted();
  }
}

/** Options of {@linkcode stopQemu}. */
export interface StopOptions {
  signal?: AbortSignal;
  /** The hard stop at once, without asking the guest. */
  force?: boolean;
  /** How long the guest gets to power off by itself. Default 60000. */
  timeoutMs?: number;
  /** Each step of the hard stop (quit, SIGTERM) gets this long. Default 3000. */
  graceMs?: number;
}

/**
 * How a stop went: "shutdown" (the guest powered off when asked), "forced"
 * (the hard stop: asked for, or the guest did not power off in time, or
 * could not be asked), "gone" (no process to stop). `ms`: from the call to
 * the process being gone, on a monotonic clock.
 */
export interface StopResult {
  how: "shutdown" | "forced" | "gone";
  ms: number;
}

/** The default of {@linkcode StopOptions.timeoutMs}. */
export const STOP_TIMEOUT_MS = 60_000;
/**
 * The power button is pressed again after 1 s, 2 s, 4 s, ... at most 10 s
 * apart (as OpenStack nova retries): a guest still booting misses a press
 * (Linux clears a pending button event when it enables ACPI, and nothing
 * may listen yet), while a guest shutting down takes a repeated press as
 * the same request.
 */
const POWERDOWN_REPEAT_FIRST_MS = 1_000;
const POWERDOWN_REPEAT_MAX_MS = 10_000;
const QMP_CALL_TIMEOUT_MS = 3_000;
const SHUTDOWN_POLL_MS = 100;

/**
 * Stops the VM's qemu: presses the ACPI power button (QMP
 * `system_powerdown`) and waits up to `timeoutMs` for the guest to power
 * off (qemu runs with `-no-shutdown`, so it then waits in state
 * "shutdown"; one that exits is fine too), then ends the process with
 * {@linkcode hardStop}. With `force`, or when QMP does not take the
 * button press, the hard stop comes at once.
 */
export async function stopQemu(
  target: StopTarget,
  {
    signal,
    force = false,
    timeoutMs = STOP_TIMEOUT_MS,
    graceMs = 3_000,
  }: StopOptions = {},
): Promise<StopResult> {
  const began = performance.now();
  const ms = () => Math.round(performance.now() - began);
  if (!await alive(target)) return { how: "gone", ms: 0 };
  const off = !force && await powerOff(target, timeoutMs, signal);
  await hardStop(target, graceMs, signal);
  return { how: off ? "shutdown" : "forced", ms: ms() };
}

/**
 * True once the guest powered off (or qemu exited) after the power button;
 * false when the guest does not run (paused, QMP silent), the button
 * cannot be pressed, or `timeoutMs` passed first.
 * Polled on short QMP connections: qemu serves one client at a time.
 */
async function powerOff(
  target: StopTarget,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  // Powered off already; or paused (no guest runs to take the button).
  const status = await qmpStatus(target, signal);
  if (status === "shutdown") return true;
  if (status !== "running") return false;
  if (!await pressPower(target, signal)) return !await alive(target);
  let repeat = POWERDOWN_REPEAT_FIRST_MS;
  let again = performance.now() + repeat;
  while (performance.now() < until) {
    await delay(SHUTDOWN_POLL_MS, signal);
    if (!await alive(target)) return true;
    if (await qmpStatus(target, signal) === "shutdown") return true;
    if (performance.now() >= again) {
      repeat = Math.min(2 * repeat, POWERDOWN_REPEAT_MAX_MS);
      again = performance.now() + repeat;
      await pressPower(target, signal);
    }
  }
  return false;
}

/** QMP `system_powerdown`; false when QMP does not take it. */
async function pressPower(
  target: StopTarget,
  signal?: AbortSignal,
): Promise<boolean> {
  const opts = { signal, timeoutMs: QMP_CALL_TIMEOUT_MS };
  try {
    const qmp = await QmpClient.connect(target.qmp, opts);
    try {
      await qmp.execute("system_powerdown", undefined, opts);
      return true;
    } finally {
      await qmp.close();
    }
  } catch {
    signal?.throwIfAborted();
    return false;
  }
}

/** qemu's run state, or null when QMP does not answer now. */
async function qmpStatus(
  target: StopTarget,
  signal?: AbortSignal,
): Promise<string | null> {
  try {
    return await queryStatus(target.qmp, {
      signal,
      timeoutMs: QMP_CALL_TIMEOUT_MS,
    });
  } catch {
    signal?.throwIfAborted();
    return null;
  }
}
