/**
 * Bench phase `place`: placement throughput. Hosts registered by hand (host
 * and alive documents, one lease, no worker processes), VMs created through
 * the in-process app (`app.request`, 64 in flight) with its placement cache,
 * so each VM is placed inline in the transaction that creates it. Reports VMs
 * placed per second, etcd transactions, revisions and keys written per VM
 * (counted on the store's client), the ratio to this run's CAS rate, and
 * checks afterwards that no host is overcommitted.
 */
import { createApp } from "../../api/app.ts";
import { keys } from "../../core/keys.ts";
import { PlacementCache } from "../../scheduler/cache.ts";
import { Alive, Alloc, Host } from "../../core/schemas.ts";
import { type Policy, usage as allocUsage } from "../../scheduler/mod.ts";
import type { CasResult } from "./cas.ts";
import type { Options } from "./options.ts";
import {
  countCalls,
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

/** Result of {@linkcode benchPlace}. */
export interface PlaceResult {
  hosts: number;
  vms: number;
  concurrency: number;
  policy: Policy;
  hostCapacity: { cpus: number; memoryMiB: number };
  vmSize: { cpus: number; memoryMiB: number };
  placementsPerS: number;
  latencyMs: Summary;
  /** VMs placed inline (phase scheduled in the POST answer). */
  placed: number;
  /** VMs left pending (no fit, or inline placement gave up). */
  pending: number;
  /** Every etcd txn RPC during the run, lost compares included, per VM. */
  txnsPerVm: number;
  /** Txns whose compare failed (another placer won the host). */
  lostCompares: number;
  /** etcd revisions the run consumed, per VM: write transactions. */
  revisionsPerVm: number;
  /** Keys put or deleted by successful txns, per VM. */
  keysWrittenPerVm: number;
  /** etcd range reads during the run, per VM (refresh after a lost compare). */
  readsPerVm: number;
  /** Hosts with more reserved than their capacity: must be 0. */
  overcommitted: number;
  /** VMs per host after the run. */
  perHost: { min: number; max: number };
  casParallelOpsPerS: number | null;
  ratioToCasParallel: number | null;
}

/** Runs the placement phase; `cas` (same run) gives the ratio. */
export async function benchPlace(
  endpoint: string,
  opts: Options,
  cas: CasResult | undefined,
): Promise<PlaceResult> {
  const store = storeFor(endpoint, "/bench/place");
  const vmSize = { cpus: 1, memoryMiB: 256 };
  // Room for every VM with about a fifth to spare.
  const perHost = Math.ceil(opts.placeVms * 1.25 / opts.placeHosts);
  const capacity = { cpus: perHost, memoryMiB: perHost * vmSize.memoryMiB };
  let lease: string | undefined;
  let cache: PlacementCache | undefined;
  try {
    lease = String(
      (await store.client.leaseClient.leaseGrant({ TTL: 600 })).ID,
    );
    progress(
      `place: registering ${opts.placeHosts} hosts of ${capacity.cpus} CPUs`,
    );
    const names = Array.from(
      { length: opts.placeHosts },
      (_, i) => `bh${String(i).padStart(3, "0")}`,
    );
    // etcd takes at most 128 operations per transaction.
    for (let i = 0; i < names.length; i += 50) {
      const txn = store.txn();
      for (const name of names.slice(i, i + 50)) {
        const host: Host = {
          name,
          capacity,
          addresses: [],
          os: "linux",
          drivers: ["sim"],
          state: "active",
          registeredAt: new Date().toISOString(),
        };
        const alive: Alive = {
          incarnation: lease,
          started: new Date().toISOString(),
          pid: Deno.pid,
          lease,
        };
        txn.put(keys.host(name), host)
          .put(keys.alive(name), alive, { lease });
      }
      await txn.commit();
    }
    cache = PlacementCache.start(store);
    await cache.ready;
    const app = createApp({
      store,
      config: {
        tasks: {
          maxAttempts: 5,
          backoffBaseMs: 500,
          backoffMaxMs: 30_000,
          taskTimeoutMs: 120_000,
        },
        // One user's VMs; the pending ones count, not refused.
        scheduler: { policy: opts.policy, maxPendingVmsPerUser: 0 },
      } as Parameters<typeof createApp>[0]["config"],
    });
    let placed = 0;
    let pending = 0;
    let placedAll = 0;
    const create = async (i: number) => {
      const res = await app.request("/v1/vms", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          name: `p${i}`,
          cpus: vmSize.cpus,
          memory: vmSize.memoryMiB,
        }),
      });
      const body = await res.json();
      if (res.status !== 201) {
        throw new Error(`POST /v1/vms: ${res.status} ${JSON.stringify(body)}`);
      }
      if (body.vm.status.phase === "scheduled") {
        placed++;
        placedAll++;
      } else pending++;
      return true;
    };
    const warm = 50;
    await timedPool(warm, 8, (i) => create(opts.placeVms + i));
    placed = pending = 0;
    const revision = async () =>
      BigInt((await store.list(keys.hosts, Host, { limit: 1 })).revision);
    const rev0 = await revision();
    const kv = store.client.kv;
    const txns = countCalls(kv, "txn", (req, res) => ({
      lost: res?.succeeded === false ? 1 : 0,
      keys: res?.succeeded ? (req.success?.length ?? 0) : 0,
    }));
    const reads = countCalls(kv, "range");
    progress(
      `place: ${opts.placeVms} VMs through POST /v1/vms, ${IN_FLIGHT} in flight, ` +
        `${opts.policy}`,
    );
    let r;
    try {
      r = await timedPool(opts.placeVms, IN_FLIGHT, create);
    } finally {
      txns.restore();
      reads.restore();
    }
    const rev1 = await revision();
    // Afterwards: no host overcommitted, every VM reserved exactly once.
    const allocs = await store.list(keys.allocs, Alloc);
    let overcommitted = 0;
    const counts: number[] = [];
    const seen = new Set<string>();
    let dup = 0;
    for (const a of allocs.items) {
      const u = allocUsage(a.value);
      if (u.cpus > capacity.cpus || u.memoryMiB > capacity.memoryMiB) {
        overcommitted++;
      }
      counts.push(u.vms);
    }
    for (const k of await store.keys(keys.allocVms)) {
      const id = k.slice(k.lastIndexOf("/") + 1);
      if (seen.has(id)) dup++;
      seen.add(id);
    }
    while (counts.length < opts.placeHosts) counts.push(0);
    const total = opts.placeVms + warm;
    const vmDocs = await store.count(keys.vms);
    if (vmDocs !== total) {
      throw new Error(`place: ${vmDocs} VM documents, expected ${total}`);
    }
    if (dup) throw new Error(`place: ${dup} VMs reserved on two hosts`);
    if (seen.size !== placedAll) {
      throw new Error(
        `place: ${seen.size} reservations for ${placedAll} placed VMs`,
      );
    }
    const n = opts.placeVms;
    const rate_ = rate(placed, r.elapsedMs);
    const casPar = cas?.parallelOpsPerS ?? null;
    return {
      hosts: opts.placeHosts,
      vms: n,
      concurrency: IN_FLIGHT,
      policy: opts.policy,
      hostCapacity: capacity,
      vmSize,
      placementsPerS: rate_,
      latencyMs: summarize(r.latencies),
      placed,
      pending,
      txnsPerVm: round(txns.calls / n, 3),
      lostCompares: txns.sum.lost,
      revisionsPerVm: round(Number(rev1 - rev0) / n, 3),
      keysWrittenPerVm: round(txns.sum.keys / n, 2),
      readsPerVm: round(reads.calls / n, 3),
      overcommitted,
      perHost: { min: Math.min(...counts), max: Math.max(...counts) },
      casParallelOpsPerS: casPar,
      ratioToCasParallel: casPar ? round(rate_ / casPar, 2) : null,
    };
  } finally {
    await cache?.close();
    if (lease) {
      await store.client.leaseClient.leaseRevoke({ ID: lease }).catch(
        () => {},
      );
    }
    store.close();
  }
}

/** Rows of the bench table. */
export function placeRows(place: PlaceResult): Row[] {
  const out: Row[] = [];
  const n = `${place.vms} VMs on ${place.hosts} hosts, ` +
    `${place.concurrency} in flight, ${place.policy}`;
  const vs = place.ratioToCasParallel === null
    ? ""
    : `, ${place.ratioToCasParallel} x CAS rate (${place.casParallelOpsPerS}/s)`;
  out.push(
    {
      name: "placements (inline at POST /v1/vms)",
      value: place.placementsPerS,
      unit: "VMs/s",
      notes: `${n}${vs}`,
    },
    {
      name: "placement POST p50 / p99",
      value: `${place.latencyMs.p50} / ${place.latencyMs.p99}`,
      unit: "ms",
      notes: `app.request, max ${place.latencyMs.max} ms`,
    },
    {
      name: "etcd txns per VM placed",
      value: place.txnsPerVm,
      unit: "txn",
      notes: `${place.lostCompares} lost alloc compares`,
    },
    {
      name: "etcd writes per VM placed",
      value: place.revisionsPerVm,
      unit: "rev",
      notes: `revisions consumed; ${place.keysWrittenPerVm} keys per VM`,
    },
    {
      name: "etcd reads per VM placed",
      value: place.readsPerVm,
      unit: "range",
      notes: "candidates come from the watch cache",
    },
    {
      name: "placement result",
      value: place.overcommitted,
      unit: "overcommitted hosts",
      notes: `${place.placed} placed, ${place.pending} pending; ` +
        `${place.perHost.min}-${place.perHost.max} VMs per host`,
    },
  );
  return out;
}
