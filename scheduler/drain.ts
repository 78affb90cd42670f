/**
 * Drain planning: which VMs a drain of a host still has to move. Pure; the
 * `host.drain` handler (tasks/host_drain.ts) enqueues one `vm.move` per
 * planned VM, and the maintenance round (round.ts) resumes a drain while
 * its plan is not empty.
 *
 * @example
 * ```ts
 * const plan = drainPlan("h1", vms, await unfinished(store, "h1"));
 * plan.move; // VMs to enqueue vm.move for
 * ```
 */
import type { Task, Vm } from "../core/schemas.ts";

/** What a drain of `host` does: which VMs to move, which are moving. */
export interface DrainPlan {
  /** VMs on the host without an unfinished `vm.move`. */
  move: Vm[];
  /** Ids of VMs on the host whose `vm.move` is queued or running. */
  moving: string[];
}

/**
 * The VMs placed on `host` (not being deleted), by id, split by whether an
 * unfinished `vm.move` off `host` for them exists among `tasks`.
 */
export function drainPlan(host: string, vms: Vm[], tasks: Task[]): DrainPlan {
  const moving = new Set(
    tasks.filter((t) =>
      t.kind === "vm.move" && t.payload.from === host &&
      (t.state === "queued" || t.state === "running")
    ).map((t) => t.payload.vm),
  );
  const on = vms.filter((v) =>
    v.status.host === host && v.desired !== "deleted"
  ).sort((a, b) => a.id.localeCompare(b.id));
  return {
    move: on.filter((v) => !moving.has(v.id)),
    moving: on.filter((v) => moving.has(v.id)).map((v) => v.id),
  };
}
