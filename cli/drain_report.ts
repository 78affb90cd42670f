/**
 * After `ucloud host drain` has moved every VM off a host: what the drain
 * did to each VM (`GET /v1/tasks/{id}/drain`): how its guest was stopped,
 * where it runs now and how long it was down. Waits until every VM's move
 * has ended, at most until the command's deadline.
 *
 * @example
 * ```ts
 * const lines = await drainLines(ctx, "t-1", Date.now() + 60_000);
 * for (const l of lines) print(ctx, l);
 * ```
 */
import type { DrainedVm, DrainReport } from "./client.ts";
import type { WaitContext } from "./command.ts";
import { ApiError } from "./errors.ts";

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

const STOPS: Record<NonNullable<DrainedVm["stop"]>, string> = {
  shutdown: "the guest shut down in",
  forced: "stopped hard after",
  gone: "was not running",
};

/** One VM's line, e.g. `vm-1: the guest shut down in 0.9s, on h2, down 4.1s`. */
export function drainLine(v: DrainedVm): string {
  const parts: string[] = [];
  if (v.stop) {
    parts.push(
      v.stop === "gone"
        ? STOPS.gone
        : `${STOPS[v.stop]} ${seconds(v.stopMs ?? 0)}`,
    );
  }
  if (v.to) parts.push(`on ${v.to}`);
  if (v.downtimeMs !== undefined) parts.push(`down ${seconds(v.downtimeMs)}`);
  if (v.problem) parts.push(v.problem);
  else if (!v.done) parts.push("still moving");
  return `  ${v.vm}: ${parts.join(", ") || "not moved yet"}`;
}

/**
 * The report of drain task `id` as lines (a heading, then one per VM),
 * polled until it is done or `deadline` (ms since the epoch) has passed.
 * Null from an API that has no drain reports yet (404).
 */
export async function drainLines(
  { client, pollIntervalMs }: WaitContext,
  id: string,
  deadline: number,
): Promise<{ report: DrainReport; lines: string[] } | null> {
  let report: DrainReport;
  try {
    report = await client.tasks.drain(id);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
  while (!report.done && Date.now() < deadline) {
    await new Promise((r) =>
      setTimeout(
        r,
        Math.max(0, Math.min(pollIntervalMs, deadline - Date.now())),
      )
    );
    report = await client.tasks.drain(id);
  }
  const lines = report.vms.length
    ? [
      `moved ${report.vms.length} VM(s)${
        report.done ? "" : " (not all done yet)"
      }:`,
      ...report.vms.map(drainLine),
    ]
    : [];
  return { report, lines };
}
