/**
 * The fencer process of one host (see `fence.ts`): every 50 ms it compares
 * the worker's lease deadline with `monotonicMs()` (CLOCK_BOOTTIME, the
 * clock the worker wrote it in; never the wall clock) and, once it has
 * passed, kills every VM of the host. It exits when the deadline has passed
 * and no VM process is left, so nothing lingers after the host is shut down.
 *
 * Usage: `deno run -A workers/fencer.ts STATE_DIR DRIVER RUN_DIR` (started
 * by the worker through `ensureFencer()`).
 */
import { monotonicMs } from "../core/clock.ts";
import { logger } from "../core/log.ts";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import type { VmDriver } from "../tasks/context.ts";
import { fencerPidFile, parseFencerArgs, readDeadline } from "./fence.ts";

/** Options of {@linkcode runFencer}. */
export interface RunFencerOptions {
  /** Where the worker writes the deadline. */
  runDir: string;
  driver: VmDriver;
  everyMs?: number;
  signal?: AbortSignal;
}

/** The fencer's loop; returns when aborted or when nothing is left to fence. */
export async function runFencer(opts: RunFencerOptions): Promise<void> {
  const { runDir, driver } = opts;
  const log = logger({ component: "fencer", runDir });
  let fencedFor = 0;
  while (!opts.signal?.aborted) {
    const deadline = await readDeadline(runDir);
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
    if (deadline !== null && now > deadline + 5000) {
      if ((await driver.fence()).length === 0) {
        log.info("no worker and no VMs left: fencer exits");
        return;
      }
    }
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 50));
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
  await runFencer({ runDir: opts.runDir, driver });
  Deno.exit(0);
}
