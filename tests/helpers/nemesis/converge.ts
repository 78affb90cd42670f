/**
 * After the faults and the workload stopped: polls etcd's VM documents and
 * the process table until every VM is in its desired state, no task is
 * unfinished and every host is registered, or the settle time is over. Records when each VM got there
 * (the last time it changed from wrong to right), which VMs were not in
 * their desired state at the first look (their last change was still in
 * flight at quiet), and which VMs that should run did not by the deadline
 * (lease TTL + 2 s after quiet).
 *
 * @example
 * ```ts
 * const c = await converge(env, store, want, { quietAt, deadlineMs: 4000,
 *   settleMs: 30_000 });
 * c.late; // VMs that should run and did not by the deadline
 * ```
 */
import { Buffer } from "node:buffer";
import { keys } from "../../../core/keys.ts";
import { prefixEnd, type Store } from "../../../core/store.ts";
import type { NemesisEnv } from "./env.ts";
import { procsByVm, type VmExpectation, vmVerdict } from "./checker.ts";
import { vmProcs } from "./procs.ts";

export interface ConvergeOptions {
  /** Date.now() when faults and workload had stopped. */
  quietAt: number;
  /** VMs that should run must do so this long after `quietAt`. */
  deadlineMs: number;
  /** Stop waiting this long after `quietAt`. */
  settleMs: number;
  everyMs?: number;
}

export interface Convergence {
  /** VM id -> ms after quiet when it was last seen turning right. */
  readyAfterMs: Map<string, number>;
  /** VM ids not in their desired state at the first look after quiet. */
  inFlight: Set<string>;
  /** VM ids that should run and did not at the deadline, with why. */
  late: Map<string, string>;
  /** ms after quiet when everything was right; null: never within settle. */
  settledAfterMs: number | null;
}

/** Keys per range request: etcd answers at most 4 MiB per message. */
const PAGE = 500;

/**
 * Every key under `prefix` (relative) with its value, read in pages of
 * {@linkcode PAGE} at the first page's revision, so it is one consistent
 * look however large the keyspace grew.
 */
export async function readPrefix(
  store: Store,
  prefix: string,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const full = store.full(prefix);
  const end = prefixEnd(full);
  let from = full;
  let revision: string | undefined;
  while (true) {
    const res = await store.client.kv.range({
      key: from,
      range_end: end,
      limit: PAGE,
      ...(revision ? { revision } : {}),
    });
    revision ??= String(res.header.revision);
    for (const kv of res.kvs) out[store.rel(kv.key)] = kv.value.toString();
    if (!res.more || res.kvs.length === 0) return out;
    from = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
  }
}

/** Polls until settled or `settleMs` passed (see the module comment). */
export async function converge(
  env: NemesisEnv,
  store: Store,
  want: readonly VmExpectation[],
  opts: ConvergeOptions,
): Promise<Convergence> {
  const readyAfterMs = new Map<string, number>();
  const wrong = new Set(want.map((v) => v.id));
  const late = new Map<string, string>();
  let inFlight: Set<string> | undefined;
  let deadlineChecked = false;
  let settledAfterMs: number | null = null;
  while (true) {
    const now = Date.now();
    const since = now - opts.quietAt;
    let vms: Record<string, string> = {};
    let unfinished = 1;
    let alive = 0;
    try {
      vms = await readPrefix(store, keys.vms);
      unfinished = Object.keys(await readPrefix(store, keys.queues)).length;
      alive = Object.keys(await readPrefix(store, keys.alives)).length;
    } catch {
      // etcd is slow to answer: count this poll as not settled.
    }
    const procs = procsByVm(vmProcs(env.hostsRoot, env.driver));
    const why = new Map<string, string>();
    for (const w of want) {
      const raw = vms[keys.vm(w.id)];
      const verdict = vmVerdict(
        w.desired,
        raw ? JSON.parse(raw) : undefined,
        procs.get(w.id) ?? [],
      );
      if (verdict) {
        why.set(w.id, verdict);
        wrong.add(w.id);
      } else if (wrong.delete(w.id)) readyAfterMs.set(w.id, Math.max(0, since));
    }
    inFlight ??= new Set(why.keys());
    if (!deadlineChecked && since >= opts.deadlineMs) {
      deadlineChecked = true;
      for (const w of want) {
        if (w.desired === "running" && why.has(w.id)) {
          late.set(w.id, why.get(w.id)!);
        }
      }
    }
    if (why.size === 0 && unfinished === 0 && alive === env.hosts.length) {
      settledAfterMs ??= since;
      if (deadlineChecked) break;
    } else settledAfterMs = null;
    if (since >= opts.settleMs) break;
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 100));
  }
  return {
    readyAfterMs,
    inFlight: inFlight ?? new Set(),
    late,
    settledAfterMs,
  };
}
