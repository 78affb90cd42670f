/**
 * The reservation ledger of a host, beside placement's writes
 * (place.ts `reserveIn()`): `alloc/<host>` holds only the sums (CPUs,
 * memory, disk, count), so placements compare and rewrite a document that
 * does not grow with the host's VMs, and each VM's own entry is
 * `allocvm/<host>/<vm>`. Releasing a VM subtracts the entry it reads and
 * deletes it, comparing both documents. Entries of an older version kept
 * in the sums document's `vms` are taken out of it instead.
 *
 * @example
 * ```ts
 * const txn = await releaseIn(store, store.txn().put(keys.vm(id), pending), "h1", id);
 * const ids = await reservedOn(store, "h1"); // ["vm-2", ...]
 * ```
 */
import { keys } from "../core/keys.ts";
import { Alloc, AllocEntry } from "../core/schemas.ts";
import type { Store, Txn } from "../core/store.ts";
import { LIST_PAGE } from "../core/watch.ts";
import { legacyIds, release, releaseLegacy } from "./resources.ts";

/**
 * Adds to `txn` the release of VM `vm`'s reservation on `host`: its
 * entry deleted and subtracted from the sums, comparing the revisions of
 * both as read (also when there is nothing to release: the compare on
 * the sums then says "still nothing").
 */
export async function releaseIn(
  store: Store,
  txn: Txn,
  host: string,
  vm: string,
): Promise<Txn> {
  const entryKey = keys.allocVm(host, vm);
  const [alloc, entry] = await Promise.all([
    store.get(keys.alloc(host), Alloc),
    store.get(entryKey, AllocEntry),
  ]);
  txn.ifModRevision(keys.alloc(host), alloc?.modRevision ?? "0");
  if (entry) {
    txn.ifModRevision(entryKey, entry.modRevision).delete(entryKey)
      .put(keys.alloc(host), release(alloc?.value ?? null, entry.value));
  } else if (alloc && legacyIds(alloc.value).includes(vm)) {
    txn.put(keys.alloc(host), releaseLegacy(alloc.value, vm));
  }
  return txn;
}

/**
 * The ids of the VMs reserved on `host` (sorted): its entries, read in
 * pages of `LIST_PAGE` at the first page's revision (a host's entries
 * grow with its VMs), and those an older version kept in the sums
 * document. An entry that cannot be read still names its VM. Throws
 * UnreadableError when the sums document cannot be read.
 */
export async function reservedOn(
  store: Store,
  host: string,
): Promise<string[]> {
  const prefix = keys.allocVmsOf(host);
  const [entries, alloc] = await Promise.all([
    entryKeys(store, prefix),
    store.get(keys.alloc(host), Alloc),
  ]);
  return [
    ...new Set([
      ...entries.map((k) => k.slice(prefix.length)),
      ...legacyIds(alloc?.value ?? null),
    ]),
  ].sort();
}

/** The keys under `prefix`, read in pages at one revision. */
async function entryKeys(store: Store, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let from: string | undefined;
  let revision: string | undefined;
  for (;;) {
    const page = await store.list(prefix, AllocEntry, {
      from,
      revision,
      limit: LIST_PAGE,
    });
    revision ??= page.revision;
    const got = [...page.items, ...page.unreadable].map((kv) => kv.key).sort();
    out.push(...got);
    const last = got.at(-1);
    if (!page.more || last === undefined) return out;
    from = `${last}\0`;
  }
}
