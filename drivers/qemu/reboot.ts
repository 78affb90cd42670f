/**
 * Rebooting a qemu of the driver in place (same process): the guest's own
 * reboot on ctrl-alt-delete, or a hard reset (QMP `system_reset`). Internal.
 *
 * Why ctrl-alt-delete: ACPI has no "reboot" button, and qemu's
 * `system_powerdown` is a power-off request. The key (QMP `send-key` on
 * the PS/2 keyboard every q35 machine has) is the request that Linux inits
 * (systemd's ctrl-alt-del.target, sysvinit's and busybox's `ctrlaltdel`
 * inittab action) answer with an orderly reboot.
 *
 * @example
 * ```ts
 * await rebootQemu(handle, { timeoutMs: 60_000 }); // { how: "reboot", ms: 930 }
 * ```
 *
 * @module
 */
import { delay } from "./_deadline.ts";
import { QmpClient } from "./qmp.ts";
import { alive, STOP_TIMEOUT_MS, type StopTarget } from "./stop.ts";

/** Options of {@linkcode rebootQemu}. */
export interface RebootOptions {
  signal?: AbortSignal;
  /** The hard reset at once, without asking the guest. */
  force?: boolean;
  /** How long the guest gets to reset itself. Default 60000. */
  timeoutMs?: number;
}

/**
 * How a reboot went: "reboot" (the guest reset itself when asked), or
 * "forced" (`system_reset`: asked for, or the guest did not reset in time).
 * `ms`: from the call to the reset, on a monotonic clock.
 */
export interface RebootResult {
  how: "reboot" | "forced";
  ms: number;
}

const QMP_CALL_TIMEOUT_MS = 3_000;
const EVENT_POLL_MS = 50;
const CTRL_ALT_DEL = ["ctrl", "alt", "delete"].map((data) => ({
  type: "qcode",
  data,
}));

/**
 * Reboots the running VM: sends ctrl-alt-delete and waits up to
 * `timeoutMs` for the guest's reset (QMP event RESET with `guest: true`),
 * else resets it (`system_reset`, also at once with `force`). The QMP
 * connection stays open for the wait (events go only to connected
 * clients), so other QMP calls to this VM wait meanwhile. A VM paused or
 * powered off is continued after a hard reset.
 */
export async function rebootQemu(
  target: StopTarget,
  { signal, force = false, timeoutMs = STOP_TIMEOUT_MS }: RebootOptions = {},
): Promise<RebootResult> {
  const began = performance.now();
  const ms = () => Math.round(performance.now() - began);
  const opts = { signal, timeoutMs: QMP_CALL_TIMEOUT_MS };
  let qmp: QmpClient;
  try {
    qmp = await QmpClient.connect(target.qmp, opts);
  } catch (err) {
    signal?.throwIfAborted();
    throw new Error(
      `Cannot reboot qemu pid ${target.pid}: QMP does not answer`,
      {
        cause: err,
      },
    );
  }
  try {
    if (!force) {
      qmp.events.length = 0;
      await qmp.execute("send-key", { keys: CTRL_ALT_DEL }, opts);
      const until = performance.now() + timeoutMs;
      while (performance.now() < until) {
        if (qmp.events.some(guestReset)) return { how: "reboot", ms: ms() };
        if (!await alive(target)) throw new Error("qemu exited");
        await delay(EVENT_POLL_MS, signal);
      }
    }
    await qmp.execute("system_reset", undefined, opts);
    const { status } = await qmp.execute<{ status: string }>(
      "query-status",
      undefined,
      opts,
    );
    if (status !== "running") await qmp.execute("cont", undefined, opts);
    return { how: "forced", ms: ms() };
  } catch (err) {
    signal?.throwIfAborted();
    throw new Error(
      `Cannot reboot qemu pid ${target.pid}: ${
        err instanceof Error ? err.message : err
      }`,
      { cause: err },
    );
  } finally {
    await qmp.close();
  }
}

function guestReset(e: { event: string; data?: unknown }): boolean {
  return e.event === "RESET" &&
    (e.data as { guest?: unknown } | undefined)?.guest === true;
}
