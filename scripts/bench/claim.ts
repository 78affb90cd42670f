/**
 * Bench phase `claim`: the task queue's worker cycle, `claim()` +
 * `complete()`, over pre-enqueued tasks, one at a time and 64 in flight, and
 * its ratio to the CAS rate at the same concurrency.
 */
import { keys } from "../../core/keys.ts";
import {
  claim,
  complete,
  enqueue,
  newTask,
  type WorkerId,
} from "../../tasks/queue.ts";
import type { CasResult } from "./cas.ts";
import {
  IN_FLIGHT,
  progress,
  rate,
  round,
  type Row,
  storeFor,
  summarize,
  type Summary,
  timedPool,
} from "./util.ts";

/** Result of {@linkcode benchClaim}. */
export interface ClaimResult {
  n: number;
  concurrency: number;
  serialTasksPerS: number;
  parallelTasksPerS: number;
  serialLatencyMs: Summary;
  parallelLatencyMs: Summary;
  /** Claims that returned null or completes that returned false. */
  failed: number;
  ratioToCasSerial: number | null;
  ratioToCasParallel: number | null;
}

/** Runs the claim phase; `cas` (same run) gives the ratios. */
export async function benchClaim(
  endpoint: string,
  n: number,
  cas: CasResult | undefined,
): Promise<ClaimResult> {
  const store = storeFor(endpoint, "/bench/claim");
  let lease: string | undefined;
  try {
    const granted = await store.client.leaseClient.leaseGrant({ TTL: 600 });
    lease = String(granted.ID);
    const worker: WorkerId = { name: "bench", lease };
    const fill = async (count: number): Promise<string[]> => {
      const tasks = Array.from(
        { length: count },
        () => newTask({ kind: "bench.noop", target: "bench", payload: {} }),
      );
      await timedPool(tasks.length, IN_FLIGHT, async (i) => {
        if (!(await enqueue(store.txn(), tasks[i]).commit()).ok) {
          throw new Error(`Cannot enqueue task ${tasks[i].id}`);
        }
      });
      return tasks.map((t) => t.id);
    };
    const cycle = async (id: string) => {
      const c = await claim(store, id, worker);
      if (!c) return false;
      return await complete(store, c.value, worker, { ok: true });
    };
    progress(`claim: enqueueing ${2 * n + 100} tasks (not timed)`);
    const warm = await fill(100);
    const serialIds = await fill(n);
    const parIds = await fill(n);
    await timedPool(warm.length, 8, (i) => cycle(warm[i]));
    progress(`claim: ${n} claim+complete one at a time`);
    const serial = await timedPool(n, 1, (i) => cycle(serialIds[i]));
    progress(`claim: ${n} claim+complete, ${IN_FLIGHT} in flight`);
    const par = await timedPool(n, IN_FLIGHT, (i) => cycle(parIds[i]));
    const left = await store.count(keys.queues);
    if (left !== 0) {
      throw new Error(`${left} queue entries left after claiming every task`);
    }
    const serialRate = rate(n, serial.elapsedMs);
    const parRate = rate(n, par.elapsedMs);
    return {
      n,
      concurrency: IN_FLIGHT,
      serialTasksPerS: serialRate,
      parallelTasksPerS: parRate,
      serialLatencyMs: summarize(serial.latencies),
      parallelLatencyMs: summarize(par.latencies),
      failed: serial.failed + par.failed,
      ratioToCasSerial: cas ? round(serialRate / cas.serialOpsPerS, 2) : null,
      ratioToCasParallel: cas ? round(parRate / cas.parallelOpsPerS, 2) : null,
    };
  } finally {
    if (lease) {
      await store.client.leaseClient.leaseRevoke({ ID: lease }).catch(
        () => {},
      );
    }
    store.close();
  }
}

/** Rows of the bench table. */
export function claimRows(cl: ClaimResult): Row[] {
  const out: Row[] = [];
  const ratio = (x: number | null) => x === null ? "" : `, ${x} x CAS rate`;
  out.push({
    name: "task claim+complete, 1 in flight",
    value: cl.serialTasksPerS,
    unit: "tasks/s",
    notes: `n=${cl.n}, p50 ${cl.serialLatencyMs.p50} ms${
      ratio(cl.ratioToCasSerial)
    }`,
  }, {
    name: `task claim+complete, ${cl.concurrency} in flight`,
    value: cl.parallelTasksPerS,
    unit: "tasks/s",
    notes: `n=${cl.n}, p50 ${cl.parallelLatencyMs.p50} ms${
      ratio(cl.ratioToCasParallel)
    }`,
  });
  if (cl.failed) {
    out.push({
      name: "task claim+complete failures",
      value: cl.failed,
      unit: "tasks",
      notes: "claim() null or complete() false",
    });
  }
  return out;
}
