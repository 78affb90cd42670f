/**
 * The fencer process of one host (see `fence.ts`): every 50 ms it compares
 * the worker's lease deadline with `monotonicMs()` (CLOCK_BOOTTIME, the
 * clock the worker wrote it in; never the wall clock) and, once it has
 * passed, kills every VM of the host. A deadline file that vanishes (the run
 * dir wiped) counts as the last deadline read. It exits when the deadline has
 * passed and no VM process is left, or when no deadline came within 5 s and
 * the host has no VM, so nothing lingers after the host is shut down.
 * Beside that loop, every second, it caps the VMs' serial logs, and it holds
 * the lease of a worker that stopped in order until a new one adopts it
 * (workers/handover.ts).
 *
 * Usage: `deno run -A workers/fencer.ts STATE_DIR DRIVER RUN_DIR
 * SERIAL_LOG_MAX_BYTES` (started by the worker through `ensureFencer()`).
 */
import { monotonicMs } from "../core/clock.ts";
import { type Logger, logger } from "../core/log.ts";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import { capSerialLogs } from "../drivers/qemu/serial_log.ts";
import type { VmDriver } from "../tasks/context.ts";
import { fencerPidFile, parseFencerArgs, readDeadline } from "./fence.ts";
import { holdLease } from "./handover.ts";

/** Options of {@linkcode runFencer}. */
export interface RunFencerOptions {
  /** Where the worker writes the deadline. */
  runDir: string;
  /** Where the VMs (and their serial logs) are. */
  stateDir: string;
  driver: VmDriver;
  serialLogMaxBytes: number;
  /** How often the deadline is checked; default 50 ms. */
  everyMs?: number;
  /** How often serial logs are capped; default 1000 ms. */
  capEveryMs?: number;
  signal?: AbortSignal;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long the fencer stays after the deadline (or without one) before it may exit. */
const LINGER_MS = 5000;

/** The fencer's loops; return when aborted or when nothing is left to fence. */
export async function runFencer(opts: RunFencerOptions): Promise<void> {
  const log = logger({ component: "fencer", runDir: opts.runDir });
  const done = new AbortController();
  const signal = opts.signal
    ? AbortSignal.any([opts.signal, done.signal])
    : done.signal;
  const caps = capLogs(opts, log, signal);
  const hold = holdLease({ runDir: opts.runDir, log, signal });
  try {
    await fence(opts, log, signal);
  } finally {
    done.abort();
    await Promise.all([caps, hold]);
  }
}

async function fence(
  opts: RunFencerOptions,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  const { runDir, driver } = opts;
  let fencedFor = 0;
  let last: number | null = null;
  const started = monotonicMs();
  while (!signal.aborted) {
    // A deadline file that vanished extends nothing: the last one read holds.
    const deadline: number | null = (await readDeadline(runDir)) ?? last;
    last = deadline;
    const now = monotonicMs();
    if (deadline !== null && now > deadline && deadline !== fencedFor) {
      const killed = await driver.fence();
      fencedFor = deadline;
      log.warn("lease deadline passed: fenced every VM", {
        deadline,
        late: now - deadline,
        killed,
      });
    }
    if (deadline !== null && now > deadline + LINGER_MS) {
      if ((await driver.fence()).length === 0) {
        log.info("no worker and no VMs left: fencer exits");
        return;
      }
    }
    if (
      deadline === null && now > started + LINGER_MS &&
      (await driver.listLocal()).length === 0
    ) {
      log.info("no deadline and no VMs: fencer exits");
      return;
    }
    await sleep(opts.everyMs ?? 50);
  }
}

/** Caps serial logs until `signal`; a failure never ends the fencer. */
async function capLogs(
  opts: RunFencerOptions,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const { rotated, failed } = await capSerialLogs(
        opts.stateDir,
        opts.serialLogMaxBytes,
      );
      if (rotated.length) log.debug("serial logs rotated", { vms: rotated });
      if (Object.keys(failed).length) {
        log.warn("cannot rotate serial logs", { failed });
      }
    } catch (err) {
      log.warn("cannot rotate serial logs", { error: String(err) });
    }
    await sleep(opts.capEveryMs ?? 1000);
  }
}

if (import.meta.main) {
  const opts = parseFencerArgs(Deno.args);
  await Deno.mkdir(opts.runDir, { recursive: true });
  await Deno.writeTextFile(fencerPidFile(opts.runDir), String(Deno.pid));
  const driver: VmDriver = opts.driver === "sim"
    ? new (await import("../drivers/sim/driver.ts")).SimDriver({
      stateDir: opts.stateDir,
    })
    : new QemuDriver({ stateDir: opts.stateDir });
  await runFencer({ ...opts, driver });
  Deno.exit(0);
}
