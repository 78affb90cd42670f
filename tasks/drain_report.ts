/**
 * What a drain did to each VM, read from its task chain: `host.drain`
 * (its moves, and its next batch) → `vm.move` (how the stop went) →
 * `vm.create` (where, following a wait for capacity) → `vm.start` (the
 * downtime). Reads a fixed number of task documents per VM, one at a time.
 *
 * Downtime is from the begin of the VM's stop on the drained host to its
 * `vm.start` finding it running on the new host, by the wall clocks of the
 * two hosts (`vm.start`'s result `downtimeMs`); a VM that was not running
 * has none.
 *
 * @example
 * ```ts
 * const report = await drainReport(store, drainTaskId);
 * report.vms; // [{ vm: "vm-1", stop: "shutdown", stopMs: 900, to: "h2", downtimeMs: 4100, done: true }]
 * ```
 */
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";

/** One VM of a drain. */
export interface DrainedVm {
  vm: string;
  /** The `vm.move` task. */
  move: string;
  /** How its stop went; absent while the move has not finished. */
  stop?: "shutdown" | "forced" | "gone";
  stopMs?: number;
  /** The host it runs on now. */
  to?: string;
  /** From the stop's begin to running on `to`. */
  downtimeMs?: number;
  /** The chain is finished: the VM was started (or needed no start). */
  done: boolean;
  /** Why it is not done, when a task failed or was skipped. */
  problem?: string;
}

/** Every VM of the drain that began with task `id`. */
export interface DrainReport {
  host?: string;
  vms: DrainedVm[];
}

/** Follows a waiting `vm.create` chain at most this far. */
const MAX_CREATE_HOPS = 1_000;

type R = Record<string, unknown>;

/** The drain's report; tasks already collected read as not done. */
export async function drainReport(
  store: Store,
  id: string,
): Promise<DrainReport> {
  const report: DrainReport = { vms: [] };
  let next: string | undefined = id;
  while (next) {
    const drain = await task(store, next);
    next = undefined;
    if (!drain) break;
    const r = (drain.result ?? {}) as R;
    if (typeof r.host === "string") report.host = r.host;
    for (const m of (Array.isArray(r.moves) ? r.moves : []) as R[]) {
      if (typeof m.vm === "string" && typeof m.task === "string") {
        report.vms.push(await followMove(store, m.vm, m.task));
      }
    }
    if (typeof r.next === "string") next = r.next;
  }
  return report;
}

async function followMove(
  store: Store,
  vm: string,
  move: string,
): Promise<DrainedVm> {
  const out: DrainedVm = { vm, move, done: false };
  const t = await task(store, move);
  if (!t || t.state !== "succeeded") {
    if (t?.error) out.problem = `vm.move ${t.state}: ${t.error}`;
    return out;
  }
  const r = (t.result ?? {}) as R;
  if (typeof r.skipped === "string") {
    return { ...out, done: true, problem: `move skipped: ${r.skipped}` };
  }
  if (typeof r.how === "string") out.stop = r.how as DrainedVm["stop"];
  if (typeof r.stopMs === "number") out.stopMs = r.stopMs;
  let create = typeof r.create === "string" ? r.create : undefined;
  for (let i = 0; create && i < MAX_CREATE_HOPS; i++) {
    const c = await task(store, create);
    if (!c || c.state !== "succeeded") return out;
    const cr = (c.result ?? {}) as R;
    if (typeof cr.next === "string") {
      create = cr.next;
      continue;
    }
    if (typeof cr.host === "string") out.to = cr.host;
    if (typeof cr.start !== "string") return { ...out, done: true };
    return await followStart(store, cr.start, out);
  }
  return out;
}

async function followStart(
  store: Store,
  id: string,
  out: DrainedVm,
): Promise<DrainedVm> {
  let start = await task(store, id);
  // A start forwarded to the host that runs the VM now.
  for (let i = 0; start && i < 10; i++) {
    const f = (start.result as R | undefined)?.forwarded;
    if (start.state !== "succeeded" || typeof f !== "string") break;
    start = await task(store, f);
    out.to = start?.target ?? out.to;
  }
  if (!start || start.state !== "succeeded") {
    if (start?.error) out.problem = `vm.start ${start.state}: ${start.error}`;
    return out;
  }
  const sr = (start.result ?? {}) as R;
  if (typeof sr.downtimeMs === "number") out.downtimeMs = sr.downtimeMs;
  return { ...out, done: true };
}

async function task(store: Store, id: string): Promise<Task | null> {
  return (await store.get(keys.task(id), Task))?.value ?? null;
}
