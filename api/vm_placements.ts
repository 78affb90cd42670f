/**
 * VM placements, derived from a watch on `vm/` (core/watch.ts): a VM
 * without a host that gets one was placed. `ucloud_placements_total{placer}`
 * counts them and `ucloud_placement_duration_seconds{placer}` times them,
 * from when the VM was last left without a host (its creation, or the
 * status write that took its host away: an evacuation, a move) to the
 * status write that named its host, by the documents' own timestamps.
 * `placer`: `api` when `POST /v1/vms` placed the VM in the transaction that
 * created it (no wait: its time is 0), `worker` when a `vm.create` task
 * did. Only the host and a time are kept per VM, and a scrape reads memory.
 *
 * Like the task counters (api/task_flow.ts), each API replica counts what
 * it saw since it started. A VM first seen without a host in a listing
 * (the process started, or the watch re-listed) waits since its last
 * status write, the best the document tells.
 *
 * @example
 * ```ts
 * const placements = VmPlacements.start(store, { log });
 * for (const m of placements.metrics) registry.registerMetric(m);
 * await placements.close();
 * ```
 */
import { Counter, Histogram, type Metric } from "prom-client";
import { z } from "zod";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import type { Store } from "../core/store.ts";
import { decodeRaw, type RawKv, watchPrefix } from "../core/watch.ts";

/** The parts of a VM document a placement needs. */
const Placed = z.object({
  createdAt: z.string(),
  status: z.object({ host: z.string().optional(), updatedAt: z.string() }),
});

/** Buckets of a placement: 5 ms to 10 min (a VM may wait for capacity). */
const BUCKETS = [
  0.005,
  0.01,
  0.025,
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
  600,
];

/** A VM: placed, or waiting for a host since (epoch ms). */
type Known = { placed: true } | { placed: false; since: number };

export class VmPlacements {
  readonly #stop = new AbortController();
  readonly #vms = new Map<string, Known>();
  readonly #watch: Promise<void>;
  readonly #count = new Counter({
    name: "ucloud_placements_total",
    help: "VMs given a host, by placer (api: placed by the create request, " +
      "worker: by a vm.create task), as this API replica saw them",
    labelNames: ["placer"] as const,
    registers: [],
  });
  readonly #duration = new Histogram({
    name: "ucloud_placement_duration_seconds",
    help: "Time a VM was without a host before it was placed, by placer",
    labelNames: ["placer"] as const,
    buckets: BUCKETS,
    registers: [],
  });

  private constructor(store: Store, log?: Logger) {
    this.#watch = watchPrefix(store, keys.vms, {
      signal: this.#stop.signal,
      log,
      onReset: (items) => {
        const known = new Set(items.map((kv) => kv.key));
        for (const key of this.#vms.keys()) {
          if (!known.has(key)) this.#vms.delete(key);
        }
        for (const kv of items) this.#take(kv, false);
      },
      onEvent: (ev) => {
        if (ev.type === "put") this.#take(ev, true);
        else this.#vms.delete(ev.key);
      },
    });
  }

  /** Lists and watches `vm/` of `store` until `close()`. */
  static start(store: Store, opts: { log?: Logger } = {}): VmPlacements {
    return new VmPlacements(store, opts.log);
  }

  /** The metrics to register in a registry. */
  get metrics(): Metric[] {
    return [this.#count, this.#duration];
  }

  #take(kv: RawKv, live: boolean): void {
    const vm = decodeRaw(kv, Placed);
    if (!vm) return;
    const prev = this.#vms.get(kv.key);
    const at = Date.parse(vm.status.updatedAt);
    const created = live && kv.createRevision === kv.modRevision;
    if (!vm.status.host) {
      const since = prev?.placed === false
        ? prev.since
        : created
        ? Date.parse(vm.createdAt)
        : at;
      this.#vms.set(kv.key, { placed: false, since });
      return;
    }
    this.#vms.set(kv.key, { placed: true });
    const placer = prev?.placed === false ? "worker" : created ? "api" : null;
    if (!placer) return;
    const from = prev?.placed === false ? prev.since : Date.parse(vm.createdAt);
    const s = (at - from) / 1000;
    this.#count.inc({ placer });
    if (Number.isFinite(s)) this.#duration.observe({ placer }, Math.max(0, s));
  }

  /** Stops the watch. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#watch.catch(() => {});
  }
}
