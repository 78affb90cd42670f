/**
 * Ending a qemu process of the driver: QMP `quit`, then SIGTERM, then
 * SIGKILL, each only while the handle's pid is still this VM's qemu (its
 * `-pidfile` argument), so a reused pid is never signalled. Internal.
 *
 * @example
 * ```ts
 * await hardStop(handle, 3_000, signal); // resolves once the process is gone
 * ```
 *
 * @module
 */
import { delay } from "./_deadline.ts";
import { ownsPidfile, processArgs } from "./_proc.ts";
import { QmpClient } from "./qmp.ts";

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
