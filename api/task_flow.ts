/**
 * What tasks did, derived from the task watch of api/task_counts.ts: the
 * workers run the tasks, but every change of a task document reaches the
 * API's watch, so the API counts outcomes, durations, retries and
 * failovers without a read per scrape and without the workers' help.
 *
 * - `ucloud_task_outcomes_total{kind, outcome}` and
 *   `ucloud_task_duration_seconds{kind, outcome}`: a task that ends
 *   (succeeded, failed, cancelled), timed from its creation to its end by
 *   the document's own timestamps (the writers' clocks).
 * - `ucloud_task_retries_total{kind}`: attempts after the first (a retry
 *   after a failed attempt, or a reclaim after a worker's lease expired).
 * - `ucloud_failovers_total` and `ucloud_failover_vms_total{action}`: failed
 *   host incarnations evacuated (`host.failed`, its follow-ups left out)
 *   and the VMs they moved (`evacuated`) or finished deleting (`deleted`).
 * - `ucloud_failover_recovery_seconds`: per evacuated VM, from the death of
 *   its host (the failure watcher's `detectedAt`: when the host's `alive/`
 *   key went, at its lease's expiry) to the VM running again: the
 *   `vm.start` that `host.failed` led to (through `vm.create`, which hands
 *   on `failover` and `downSince`) succeeded, not skipped nor forwarded.
 *
 * Counted once per change this process saw: each API replica counts from
 * its own start, so the counters of replicas are alike and reset with the
 * process (Prometheus' `rate()` and `increase()` handle the reset; do not
 * sum them over replicas, take one or `max`). A task that ended while the
 * watch was re-listing is still counted (its last known state was not
 * final); one that began and ended unseen by this process is not.
 *
 * @example
 * ```ts
 * const flow = new TaskFlow();
 * flow.seen(undefined, task, true);
 * for (const m of flow.metrics) registry.registerMetric(m);
 * ```
 */
import { Counter, Histogram, type Metric } from "prom-client";
import type { Task } from "../core/schemas.ts";

/** What the watch remembers of a task document it saw. */
export interface SeenTask {
  state: Task["state"];
  attempts: number;
}

/** Buckets of task durations: 10 ms to 30 min. */
const TASK_BUCKETS = [
  0.01,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
  300,
  600,
  1800,
];

/** Buckets of a VM's failover: 1 s to 30 min. */
const FAILOVER_BUCKETS = [
  1,
  2,
  5,
  10,
  15,
  20,
  30,
  45,
  60,
  90,
  120,
  300,
  600,
  1800,
];

const FINAL = new Set<Task["state"]>(["succeeded", "failed", "cancelled"]);

/** Seconds from the ISO time `from` to `to`, or null if either is unreadable. */
function secondsBetween(from: unknown, to: string): number | null {
  const s = (Date.parse(to) - Date.parse(String(from))) / 1000;
  return Number.isFinite(s) ? Math.max(0, s) : null;
}

/** Counts and times what tasks did, fed with every task change seen. */
export class TaskFlow {
  readonly #outcomes = new Counter({
    name: "ucloud_task_outcomes_total",
    help: "Tasks that ended, by kind and outcome (succeeded, failed, " +
      "cancelled), as this API replica saw them since it started",
    labelNames: ["kind", "outcome"] as const,
    registers: [],
  });
  readonly #duration = new Histogram({
    name: "ucloud_task_duration_seconds",
    help: "Time from a task's creation to its end, by kind and outcome",
    labelNames: ["kind", "outcome"] as const,
    buckets: TASK_BUCKETS,
    registers: [],
  });
  readonly #retries = new Counter({
    name: "ucloud_task_retries_total",
    help: "Task attempts after the first (retried after a failure, or " +
      "reclaimed after its worker's lease expired), by kind",
    labelNames: ["kind"] as const,
    registers: [],
  });
  readonly #failovers = new Counter({
    name: "ucloud_failovers_total",
    help: "Failed host incarnations whose VMs were evacuated (host.failed " +
      "succeeded)",
    registers: [],
  });
  readonly #failoverVms = new Counter({
    name: "ucloud_failover_vms_total",
    help: "VMs of failed hosts, by what the failover did: evacuated " +
      "(placed again) or deleted (they were being deleted)",
    labelNames: ["action"] as const,
    registers: [],
  });
  readonly #recovery = new Histogram({
    name: "ucloud_failover_recovery_seconds",
    help: "Per evacuated VM, time from its host's death (alive key gone) " +
      "to the VM running on another host",
    buckets: FAILOVER_BUCKETS,
    registers: [],
  });

  /** The metrics to register in a registry. */
  get metrics(): Metric[] {
    return [
      this.#outcomes,
      this.#duration,
      this.#retries,
      this.#failovers,
      this.#failoverVms,
      this.#recovery,
    ];
  }

  /**
   * Takes a change of a task: `prev` is what was known of it before
   * (undefined: nothing), `live` whether it came from the watch (true) or
   * from a listing (false: an unknown task found then is history, not news).
   */
  seen(prev: SeenTask | undefined, next: Task, live: boolean): void {
    const before = prev?.attempts ?? (live ? 0 : next.attempts);
    const retries = next.attempts - Math.max(before, 1);
    if (retries > 0) this.#retries.inc({ kind: next.kind }, retries);
    if (!FINAL.has(next.state)) return;
    if (prev ? FINAL.has(prev.state) : !live) return;
    const labels = { kind: next.kind, outcome: next.state };
    this.#outcomes.inc(labels);
    const took = secondsBetween(next.createdAt, next.updatedAt);
    if (took !== null) this.#duration.observe(labels, took);
    if (next.state === "succeeded") this.#succeeded(next);
  }

  #succeeded(task: Task): void {
    const p = task.payload;
    const r = (task.result ?? {}) as Record<string, unknown>;
    // A start that was skipped or forwarded to the VM's host started nothing.
    const started = r.skipped === undefined && r.forwarded === undefined;
    if (task.kind === "vm.start" && typeof p.failover === "string" && started) {
      const s = secondsBetween(p.downSince, task.updatedAt);
      if (s !== null) this.#recovery.observe(s);
    }
    if (task.kind !== "host.failed" || p.recheck !== undefined) return;
    if (!Array.isArray(r.evacuated) || !Array.isArray(r.deleted)) return;
    this.#failovers.inc();
    this.#failoverVms.inc({ action: "evacuated" }, r.evacuated.length);
    this.#failoverVms.inc({ action: "deleted" }, r.deleted.length);
  }
}
