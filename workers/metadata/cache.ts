/**
 * The metadata of the VMs of this host, kept fresh by etcd watches: per VM
 * its document (`vm/<id>`) and user data (`userdata/<id>`), per owner of
 * such a VM its keys (`key/<owner>/`). Any change re-reads the VM's
 * metadata (resources/vms/metadata.ts `vmMetadata`), so a deleted key is
 * gone from the answers within a watch round trip and three reads. Watches
 * exist only for the VMs `track()` was last given; a VM that leaves takes
 * its watches (and its owner's, when it was the last of that owner).
 *
 * @example
 * ```ts
 * const cache = new MetadataCache({ store, log });
 * cache.track(["vm-1"]);
 * const m = await cache.get("vm-1"); // VmMetadata, or null (no such VM)
 * await cache.close();
 * ```
 */
import { keys } from "../../core/keys.ts";
import type { Logger } from "../../core/log.ts";
import { Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { NotFoundError } from "../../core/errors.ts";
import { decodeRaw, type RawKv, sleep, watchPrefix } from "../../core/watch.ts";
import { type VmMetadata, vmMetadata } from "../../resources/vms/metadata.ts";

/**
 * Wait before reading again after a failed read: doubling from the first
 * to the last, so a document that stays unreadable costs a read (and a
 * warning) every 30 s, not four a second.
 */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 30_000;

/** Options of a {@linkcode MetadataCache}. */
export interface MetadataCacheOptions {
  store: Store;
  log: Logger;
}

/** One tracked VM. */
interface Entry {
  stop: AbortController;
  owner?: string;
  /** The latest read (null: no such VM); a promise until the first. */
  value: Promise<VmMetadata | null>;
  /** A read is running; `again`: an event came meanwhile. */
  reading: boolean;
  again: boolean;
  /** Resolves the first read. */
  ready: (v: VmMetadata | null) => void;
  loaded: boolean;
}

/** See the module comment. */
export class MetadataCache {
  readonly #o: MetadataCacheOptions;
  readonly #vms = new Map<string, Entry>();
  /** Key watches by owner, with the VMs that need them. */
  readonly #owners = new Map<
    string,
    { stop: AbortController; vms: Set<string>; done: Promise<void> }
  >();
  readonly #running = new Set<Promise<void>>();

  constructor(opts: MetadataCacheOptions) {
    this.#o = opts;
  }

  /** Watches exactly these VMs from now on. */
  track(vmIds: Iterable<string>): void {
    const want = new Set(vmIds);
    for (const id of [...this.#vms.keys()]) {
      if (!want.has(id)) this.#drop(id);
    }
    for (const id of want) if (!this.#vms.has(id)) this.#add(id);
  }

  /**
   * The metadata of a tracked VM (waiting for its first read), or null
   * for a VM that is not tracked or has no document.
   */
  get(vmId: string): Promise<VmMetadata | null> {
    return this.#vms.get(vmId)?.value ?? Promise.resolve(null);
  }

  /** Ends every watch. */
  async close(): Promise<void> {
    this.track([]);
    await Promise.all(this.#running);
  }

  #add(id: string): void {
    let ready!: (v: VmMetadata | null) => void;
    const value = new Promise<VmMetadata | null>((r) => ready = r);
    const e: Entry = {
      stop: new AbortController(),
      value,
      reading: false,
      again: false,
      ready,
      loaded: false,
    };
    this.#vms.set(id, e);
    const onVm = (items: RawKv[]) => {
      const kv = items.find((i) => i.key === keys.vm(id));
      const owner = kv ? decodeRaw(kv, Vm)?.owner : undefined;
      if (owner && owner !== e.owner) this.#setOwner(id, e, owner);
      this.#refresh(id, e);
    };
    const mine = (prefix: string) => (kv: RawKv) => kv.key === prefix;
    this.#watch(e.stop.signal, keys.vm(id), mine(keys.vm(id)), onVm);
    this.#watch(
      e.stop.signal,
      keys.userData(id),
      mine(keys.userData(id)),
      () => this.#refresh(id, e),
    );
  }

  #drop(id: string): void {
    const e = this.#vms.get(id)!;
    this.#vms.delete(id);
    e.stop.abort();
    e.ready(null);
    if (e.owner) this.#leaveOwner(id, e.owner);
  }

  #setOwner(id: string, e: Entry, owner: string): void {
    if (e.owner) this.#leaveOwner(id, e.owner);
    e.owner = owner;
    const have = this.#owners.get(owner);
    if (have) {
      have.vms.add(id);
      return;
    }
    const stop = new AbortController();
    const entry = { stop, vms: new Set([id]), done: Promise.resolve() };
    this.#owners.set(owner, entry);
    const prefix = keys.sshKeysOf(owner);
    entry.done = this.#watch(stop.signal, prefix, () => true, (_, initial) => {
      // The VM's own first read already saw the keys of this listing.
      if (initial) return;
      for (const vm of entry.vms) {
        const v = this.#vms.get(vm);
        if (v) this.#refresh(vm, v);
      }
    });
  }

  #leaveOwner(id: string, owner: string): void {
    const o = this.#owners.get(owner);
    if (!o) return;
    o.vms.delete(id);
    if (o.vms.size) return;
    this.#owners.delete(owner);
    o.stop.abort();
  }

  /**
   * Watches `prefix` (its keys that `match`), calling `changed` with the
   * matching items on every listing and event; `initial` is true for the
   * first listing.
   */
  #watch(
    signal: AbortSignal,
    prefix: string,
    match: (kv: RawKv) => boolean,
    changed: (items: RawKv[], initial: boolean) => void,
  ): Promise<void> {
    let first = true;
    const p = watchPrefix(this.#o.store, prefix, {
      signal,
      log: this.#o.log,
      onReset: (items) => {
        changed(items.filter(match), first);
        first = false;
      },
      onEvent: (ev) => {
        if (!match(ev)) return;
        changed(ev.type === "put" ? [ev] : [], false);
      },
    }).catch((err) =>
      this.#o.log.error("metadata watch failed", { prefix, error: String(err) })
    );
    this.#running.add(p);
    p.finally(() => this.#running.delete(p));
    return p;
  }

  /** Reads the VM's metadata again; reads after a change are coalesced. */
  #refresh(id: string, e: Entry): void {
    if (e.reading) {
      e.again = true;
      return;
    }
    e.reading = true;
    const p = (async () => {
      let pause = RETRY_FIRST_MS;
      do {
        e.again = false;
        let v: VmMetadata | null;
        try {
          v = await vmMetadata(this.#o.store, id);
        } catch (err) {
          if (!(err instanceof NotFoundError)) {
            this.#o.log.warn("cannot read VM metadata, retrying", {
              vm: id,
              error: String(err),
            });
            // The last read is served meanwhile.
            e.again = true;
            await sleep(pause, e.stop.signal);
            pause = Math.min(2 * pause, RETRY_MAX_MS);
            continue;
          }
          v = null;
        }
        if (e.stop.signal.aborted) break;
        if (e.loaded) e.value = Promise.resolve(v);
        else e.ready(v);
        e.loaded = true;
      } while (e.again && !e.stop.signal.aborted);
      e.reading = false;
    })();
    this.#running.add(p);
    p.finally(() => this.#running.delete(p));
  }
}
