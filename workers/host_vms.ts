/**
 * The VM documents of this host, kept from a watch of `vm/` instead of
 * listing the prefix again and again (DESIGN.md rules 4 and 8): listed once
 * in pages at one revision (core/watch.ts `listPages()`), then watched
 * from that revision + 1; after a watch error (compacted, canceled, stream
 * lost) listed again. Only VMs
 * whose `status.host` is this host are kept, so memory is O(this host's
 * VMs) and an idle host reads nothing; another host's VM costs one decode
 * per change. A document that cannot be read is kept as its id
 * (`unreadable()`): it may be one of this host's VMs. Its host cannot be
 * read, but what this process saw before tells (`unreadableHere()`): it may
 * be here if its last readable version was here, or if it was unreadable
 * already at the first listing (unknown: an earlier worker may have set it
 * up here); not if it was another host's or absent, since only this host's
 * worker sets up a VM here, from what it read.
 *
 * Entries are as read (key, value, mod revision): a decision made on one
 * compares that revision (rule 1), so a stale entry loses its compare and
 * the change is seen with its event. `refresh(id)` reads one VM now.
 *
 * @example
 * ```ts
 * const vms = await HostVms.start({ store, host: "h1", log }, signal);
 * for (const vm of vms.items()) console.log(vm.value.id, vm.modRevision);
 * vms.onChange((id, before, after) => kick());
 * await vms.done; // after signal aborts
 * ```
 */
import { idOf, keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { Vm } from "../core/schemas.ts";
import type { Kv, Store } from "../core/store.ts";
import {
  decodeRawKv,
  LIST_PAGE,
  listPages,
  sleep,
  type WatchEvent,
  watchOnce,
} from "../core/watch.ts";

/** Removals a `refresh` saw ahead of the watch, remembered at most. */
const GONE_MAX = 10_000;

/** Options of {@linkcode HostVms.start}. */
export interface HostVmsOptions {
  store: Store;
  host: string;
  log: Logger;
  /** Documents per page of a listing (default `LIST_PAGE`). */
  pageSize?: number;
  /** Wait after a failed listing before the next try. */
  retryMs?: number;
}

/** Told of every change of a kept VM: added, changed or gone (undefined). */
export type VmChange = (
  id: string,
  before: Kv<Vm> | undefined,
  after: Kv<Vm> | undefined,
) => void;

/** A listing's result: this host's VMs and the unreadable ids. */
interface Snapshot {
  vms: Map<string, Kv<Vm>>;
  bad: Map<string, bigint>;
  revision: string;
}

/** See the module comment. */
export class HostVms {
  readonly #o: HostVmsOptions;
  #vms = new Map<string, Kv<Vm>>();
  /** Unreadable documents: id -> mod revision. */
  #bad = new Map<string, bigint>();
  /**
   * The unreadable documents that may be of this host: id -> the last
   * version seen here, or null when unknown (see the module comment).
   */
  #badHere = new Map<string, Kv<Vm> | null>();
  /** The first listing has been taken. */
  #listed = false;
  /** Every change up to this revision has been applied (listing, watch). */
  #done = 0n;
  /**
   * VMs a `refresh` found gone from this host ahead of the watch: id ->
   * revision, until the watch passes it (an older event must not bring
   * them back); at most `GONE_MAX`, oldest dropped first.
   */
  readonly #gone = new Map<string, bigint>();
  readonly #listeners = new Set<VmChange>();
  /** Resolves once the watch has ended (the signal aborted). */
  done: Promise<void> = Promise.resolve();

  private constructor(opts: HostVmsOptions) {
    this.#o = opts;
  }

  /**
   * Lists (retrying until it succeeds or `signal` aborts) and keeps the
   * VMs from a watch until `signal` aborts.
   */
  static async start(
    opts: HostVmsOptions,
    signal: AbortSignal,
  ): Promise<HostVms> {
    const vms = new HostVms(opts);
    const first = await vms.#list(signal);
    if (first) vms.#reset(first);
    vms.done = first ? vms.#run(first.revision, signal) : Promise.resolve();
    return vms;
  }

  /** This host's VM `id` as last seen, if it is one. */
  get(id: string): Kv<Vm> | undefined {
    return this.#vms.get(id);
  }

  /** Every VM of this host as last seen. */
  items(): Kv<Vm>[] {
    return [...this.#vms.values()];
  }

  /** Ids of the VM documents that cannot be read (of any host). */
  unreadable(): Set<string> {
    return new Set(this.#bad.keys());
  }

  /**
   * The unreadable VM documents that may be of this host: id -> its last
   * version seen here, or null when its host was never known.
   */
  unreadableHere(): Map<string, Vm | null> {
    return new Map(
      [...this.#badHere].map(([id, kv]) => [id, kv?.value ?? null]),
    );
  }

  /** Calls `f` on every change from now on; returns the unsubscribe. */
  onChange(f: VmChange): () => void {
    this.#listeners.add(f);
    return () => this.#listeners.delete(f);
  }

  /**
   * Reads VM `id` now and takes it unless the watch has meanwhile gone
   * past the revision it was read at (the answer may come after the
   * watch's event of a later change, e.g. from a slower etcd member);
   * returns the entry (null: not this host's, or gone). Throws
   * UnavailableError when etcd cannot be read.
   */
  async refresh(id: string): Promise<Kv<Vm> | null> {
    const key = keys.vm(id);
    const r = await this.#o.store.list(key, Vm, {
      from: key,
      before: `${key}\0`,
    });
    if (BigInt(r.revision) <= this.#done) return this.#vms.get(id) ?? null;
    const kv = r.items[0];
    const rev = BigInt(kv?.modRevision ?? r.revision);
    if (r.unreadable.length) this.#apply(id, "unreadable", BigInt(r.revision));
    else this.#apply(id, kv ?? null, rev);
    const kept = this.#vms.get(id);
    if (!kept && !r.unreadable.length && rev > this.#done) {
      this.#gone.set(id, rev);
      for (const old of this.#gone.keys()) {
        if (this.#gone.size <= GONE_MAX) break;
        this.#gone.delete(old);
      }
    }
    return kept ?? null;
  }

  /** Lists `vm/` in pages at one revision; null when `signal` aborted. */
  async #list(signal: AbortSignal): Promise<Snapshot | null> {
    const { store, host, log } = this.#o;
    while (!signal.aborted) {
      try {
        const vms = new Map<string, Kv<Vm>>();
        const bad = new Map<string, bigint>();
        const revision = await listPages(store, keys.vms, (page) => {
          for (const kv of page) {
            const vm = decodeRawKv(kv, Vm);
            if ("reason" in vm) bad.set(idOf(kv.key), 0n);
            else if (vm.value.status.host === host) vms.set(vm.value.id, vm);
          }
        }, this.#o.pageSize ?? LIST_PAGE);
        return { vms, bad, revision };
      } catch (err) {
        log.warn("cannot list the VMs, retrying", { error: String(err) });
        await sleep(this.#o.retryMs ?? 250, signal);
      }
    }
    return null;
  }

  /** Watches from `revision` + 1; after each watch error lists again. */
  async #run(revision: string, signal: AbortSignal): Promise<void> {
    const { store, log } = this.#o;
    let rev = revision;
    while (!signal.aborted) {
      await watchOnce(store, keys.vms, rev, {
        signal,
        log,
        onEvent: (ev) => this.#event(ev),
      });
      if (signal.aborted) return;
      const again = await this.#list(signal);
      if (!again) return;
      this.#reset(again);
      rev = again.revision;
    }
  }

  /** Takes a listing, telling listeners what differs from before. */
  #reset(s: Snapshot): void {
    const before = this.#vms;
    const here = new Map<string, Kv<Vm> | null>();
    for (const id of s.bad.keys()) {
      const last = before.get(id) ?? this.#badHere.get(id);
      if (last !== undefined) here.set(id, last);
      else if (!this.#listed) here.set(id, null);
    }
    this.#listed = true;
    this.#badHere = here;
    this.#vms = s.vms;
    this.#bad = s.bad;
    this.#passed(BigInt(s.revision));
    for (const id of new Set([...before.keys(), ...s.vms.keys()])) {
      const a = before.get(id), b = s.vms.get(id);
      if (a?.modRevision !== b?.modRevision) this.#tell(id, a, b);
    }
  }

  #event(ev: WatchEvent): void {
    const id = idOf(ev.key);
    const rev = BigInt(ev.modRevision);
    // Events come in revision order: all before this one are applied.
    this.#passed(rev - 1n);
    if (ev.type === "delete") return this.#apply(id, null, rev);
    const vm = decodeRawKv(ev, Vm);
    this.#apply(id, "reason" in vm ? "unreadable" : vm, rev);
  }

  /**
   * Takes what is known of VM `id` as of revision `rev`, unless what is
   * kept is as new or newer (a `refresh` may run ahead of the watch).
   */
  #apply(id: string, next: Kv<Vm> | null | "unreadable", rev: bigint): void {
    const cur = this.#vms.get(id);
    const seen = cur ? BigInt(cur.modRevision) : this.#bad.get(id);
    if (seen !== undefined && seen >= rev) return;
    const gone = this.#gone.get(id);
    if (gone !== undefined && gone >= rev) return;
    this.#gone.delete(id);
    if (next === "unreadable") {
      this.#bad.set(id, rev);
      if (cur) this.#badHere.set(id, cur);
    } else {
      this.#bad.delete(id);
      this.#badHere.delete(id);
    }
    const kept = next && next !== "unreadable" &&
        next.value.status.host === this.#o.host
      ? next
      : undefined;
    if (kept) this.#vms.set(id, kept);
    else this.#vms.delete(id);
    if (cur || kept) this.#tell(id, cur, kept);
  }

  /** Every change up to `rev` is applied: forgets removals it passed. */
  #passed(rev: bigint): void {
    if (rev <= this.#done) return;
    this.#done = rev;
    for (const [id, at] of this.#gone) {
      if (at <= rev) this.#gone.delete(id);
    }
  }

  #tell(id: string, before?: Kv<Vm>, after?: Kv<Vm>): void {
    for (const f of this.#listeners) {
      try {
        f(id, before, after);
      } catch (err) {
        this.#o.log.error("VM change listener failed", {
          vm: id,
          error: String(err),
        });
      }
    }
  }
}
