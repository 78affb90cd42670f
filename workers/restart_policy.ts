/**
 * What happens when a VM's process died while the VM should run, as
 * hosters know it from Proxmox HA or libvirt autostart: it is restarted on
 * its host after a backoff, at most `max` times within a window; one
 * crash more and the VM goes to phase `error` with the reason, until a user
 * starts it again. Pure: the worker applies the decision (workers/crash.ts).
 *
 * @example
 * ```ts
 * const d = onCrash(vm.status.crashes, "qemu exited", new Date(), config.restart);
 * if ("delayMs" in d) enqueueStartAfter(d.delayMs);
 * ```
 */
import type { Config } from "../core/config.ts";
import type { Crash } from "../core/schemas.ts";

export type RestartPolicy = Config["restart"];

export type CrashDecision =
  /** Restart after `delayMs`; this is restart `count` of `max` in the window. */
  | { crashes: Crash[]; delayMs: number; count: number }
  /** Crashed too often: phase error with `error` as the reason. */
  | { crashes: Crash[]; error: string };

/**
 * Decides a crash seen at `now` given the VM's earlier `crashes`: those
 * older than the window are forgotten, so the list stays at most `max + 1`
 * long however long the VM lives.
 */
export function onCrash(
  crashes: Crash[] | undefined,
  reason: string,
  now: Date,
  policy: RestartPolicy,
): CrashDecision {
  const since = now.getTime() - policy.windowSeconds * 1000;
  const recent = [
    ...(crashes ?? []).filter((c) => Date.parse(c.at) > since),
    { at: now.toISOString(), reason },
  ].slice(-(policy.max + 1));
  const count = recent.length;
  if (count > policy.max) {
    return {
      crashes: recent,
      error: `crashed ${count} times within ${policy.windowSeconds} s ` +
        `(restart.max ${policy.max}); not restarted again. Last: ${reason}`,
    };
  }
  const delayMs = Math.min(
    policy.backoffMaxMs,
    policy.backoffBaseMs * 2 ** (count - 1),
  );
  return { crashes: recent, delayMs, count };
}
