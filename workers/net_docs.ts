/**
 * The network documents a host's network sync needs (workers/net.ts), read
 * for this host's part only: the networks its VMs' NICs use, by key, kept
 * between syncs (a network's spec does not change once created; a fresh
 * sync reads them again), and the `netmember/` keys, kept from a watch
 * while `watch()` runs (before that, read per network). Nothing here lists
 * `network/` or `vm/`.
 *
 * @example
 * ```ts
 * const docs = new NetDocs({ store, log });
 * const { nets, bad } = await docs.networks(new Set(["net-1"]), false);
 * const members = await docs.members(new Set(["net-1"]));
 * ```
 */
import { UnreadableError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import type { Logger } from "../core/log.ts";
import { NetMember, Network } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { decodeRaw, type RawKv, watchPrefix } from "../core/watch.ts";
import type { Member } from "./net_membership.ts";

/** Options of a {@linkcode NetDocs}. */
export interface NetDocsOptions {
  store: Store;
  log: Logger;
}

/** A network as last read: its document, absent (null) or unreadable. */
type Known = Network | null | "unreadable";

/** See the module comment. */
export class NetDocs {
  readonly #o: NetDocsOptions;
  readonly #nets = new Map<string, Known>();
  /** Every membership key from the watch; null until it has listed. */
  #members: Map<string, Member> | null = null;

  constructor(opts: NetDocsOptions) {
    this.#o = opts;
  }

  /**
   * The documents of networks `ids` (read now when `fresh` or not read
   * before) and the ids whose document cannot be read. Networks not in
   * `ids` are forgotten.
   */
  async networks(
    ids: Set<string>,
    fresh: boolean,
  ): Promise<{ nets: Network[]; bad: Set<string> }> {
    for (const id of this.#nets.keys()) if (!ids.has(id)) this.#nets.delete(id);
    const read = [...ids].filter((id) => fresh || !this.#nets.has(id));
    const got = await Promise.all(read.map((id) => this.#read(id)));
    read.forEach((id, i) => this.#nets.set(id, got[i]));
    const nets: Network[] = [];
    const bad = new Set<string>();
    for (const [id, n] of this.#nets) {
      if (n === "unreadable") bad.add(id);
      else if (n) nets.push(n);
    }
    return { nets, bad };
  }

  async #read(id: string): Promise<Known> {
    try {
      return (await this.#o.store.get(keys.network(id), Network))?.value ??
        null;
    } catch (err) {
      if (err instanceof UnreadableError) return "unreadable";
      throw err;
    }
  }

  /**
   * The membership keys: every one from the watch, or (before it has
   * listed) those of networks `ids`, read now.
   */
  async members(ids: Set<string>): Promise<Member[]> {
    if (this.#members) return [...this.#members.values()];
    const lists = await Promise.all(
      [...ids].map((id) =>
        this.#o.store.list(keys.netMembersOf(id), NetMember)
      ),
    );
    return lists.flatMap((l) =>
      l.items.map((kv) => member(kv.key, kv.value.address, kv.lease))
    );
  }

  /**
   * Keeps the membership keys from a watch until `signal` aborts, calling
   * `changed` after each listing (no argument) and each change.
   */
  async watch(
    signal: AbortSignal,
    changed: (m?: Member) => void,
  ): Promise<void> {
    const { store, log } = this.#o;
    const parse = (kv: RawKv) =>
      member(kv.key, decodeRaw(kv, NetMember)?.address, kv.lease ?? "0");
    await watchPrefix(store, keys.netMembers, {
      signal,
      log,
      onReset: (items) => {
        this.#members = new Map(items.map((kv) => [kv.key, parse(kv)]));
        changed();
      },
      onEvent: (ev) => {
        const m = parse(ev);
        if (ev.type === "put") this.#members?.set(ev.key, m);
        else this.#members?.delete(ev.key);
        changed(m);
      },
    });
    this.#members = null;
  }
}

function member(key: string, address: string | undefined, lease: string) {
  const [network, host] = key.slice(keys.netMembers.length).split("/");
  return { network, host, lease, ...(address ? { address } : {}) };
}
