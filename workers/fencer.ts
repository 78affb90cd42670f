/**
 * The fencer process of one host (see `fence.ts`): every 50 ms it compares
 * the worker's lease deadline with `monotonicMs()` (CLOCK_BOOTTIME, the
 * clock the worker wrote it in; never the wall clock) and, once it has passed, kills
 * every VM of the host. It exits when the deadline has passed and no VM
 * process is left, so nothing lingers after the host is shut down.
 *
 * Usage: `deno run -A workers/fencer.ts STATE_DIR DRIVER` (started by the
 * worker through `ensureFencer()`).
 */
import { monotonicMs } from "../core/clock.ts";
import { logger } from "../core/log.ts";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import type { VmDriver } from "../tasks/context.ts";
import { readDeadline } from "./fence.ts";

export async function runFencer(
  stateDir: string,
  driver: VmDriver,
  opts: { everyMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const log = logger({ component: "fencer", stateDir });
  let fencedFor = 0;
  while (!opts.signal?.aborted) {
    const deadline = await readDeadline(stateDir);
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
  const [stateDir, kind = "qemu"] = Deno.args;
  await Deno.writeTextFile(`${stateDir}/fencer.pid`, String(Deno.pid));
  const driver: VmDriver = kind === "sim"
    ? new (await import("../drivers/sim/driver.ts")).SimDriver({ stateDir })
    : new QemuDriver({ stateDir });
  await runFencer(stateDir, driver);
  Deno.exit(0);
}
