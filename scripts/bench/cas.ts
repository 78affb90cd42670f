/**
 * Bench phase `cas`: raw etcd compare-and-swap transactions
 * (`ifAbsent(k).put(k)` on distinct keys), one at a time and 64 in flight.
 * The other etcd phases are judged against these rates.
 */
import {
  IN_FLIGHT,
  progress,
  rate,
  type Row,
  storeFor,
  summarize,
  type Summary,
  timedPool,
} from "./util.ts";

/** Result of {@linkcode benchCas}. */
export interface CasResult {
  n: number;
  concurrency: number;
  serialOpsPerS: number;
  parallelOpsPerS: number;
  serialLatencyMs: Summary;
  parallelLatencyMs: Summary;
  failed: number;
}

/** Runs the CAS phase against the etcd at `endpoint`. */
export async function benchCas(
  endpoint: string,
  n: number,
): Promise<CasResult> {
  const store = storeFor(endpoint, "/bench/cas");
  try {
    const cas = async (key: string) =>
      (await store.txn().ifAbsent(key).put(key, { v: 1 }).commit()).ok;
    await timedPool(100, 8, (i) => cas(`warm/${i}`));
    progress(`cas: ${n} txns one at a time`);
    const serial = await timedPool(n, 1, (i) => cas(`serial/${i}`));
    progress(`cas: ${n} txns, ${IN_FLIGHT} in flight`);
    const par = await timedPool(n, IN_FLIGHT, (i) => cas(`parallel/${i}`));
    return {
      n,
      concurrency: IN_FLIGHT,
      serialOpsPerS: rate(n, serial.elapsedMs),
      parallelOpsPerS: rate(n, par.elapsedMs),
      serialLatencyMs: summarize(serial.latencies),
      parallelLatencyMs: summarize(par.latencies),
      failed: serial.failed + par.failed,
    };
  } finally {
    store.close();
  }
}

/** Rows of the bench table. */
export function casRows(cas: CasResult): Row[] {
  const out: Row[] = [];
  out.push({
    name: "etcd CAS txn, 1 in flight",
    value: cas.serialOpsPerS,
    unit: "ops/s",
    notes: `n=${cas.n}, p50 ${cas.serialLatencyMs.p50} ms`,
  }, {
    name: `etcd CAS txn, ${cas.concurrency} in flight`,
    value: cas.parallelOpsPerS,
    unit: "ops/s",
    notes: `n=${cas.n}, p50 ${cas.parallelLatencyMs.p50} ms`,
  });
  return out;
}
