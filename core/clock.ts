/**
 * The clock of every lease deadline: CLOCK_BOOTTIME in milliseconds, read
 * from the first field of `/proc/uptime` (10 ms resolution). Unlike
 * `Date.now()` it never steps (NTP, an operator's `date -s`), and unlike
 * `performance.now()` it is the same in every process of the machine, so the
 * worker can write a deadline to a file that its fencer compares against.
 *
 * @example
 * ```ts
 * const deadline = monotonicMs() + 2000;
 * if (monotonicMs() > deadline) fence();
 * ```
 */

/** Milliseconds since boot (CLOCK_BOOTTIME); one small synchronous read. */
export function monotonicMs(): number {
  const text = Deno.readTextFileSync("/proc/uptime");
  const seconds = Number(text.slice(0, text.indexOf(" ")));
  if (!Number.isFinite(seconds)) {
    throw new Error(`Cannot read the clock: /proc/uptime says ${text}`);
  }
  return Math.round(seconds * 1000);
}
