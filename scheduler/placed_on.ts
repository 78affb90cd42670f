/**
 * The VM documents placed on one host, read through the host's
 * reservations instead of a listing of all of `vm/` (DESIGN.md rule 8):
 * the ids of its `allocvm/<host>/` entries and of any older version's
 * record in `alloc/<host>` (scheduler/ledger.ts `reservedOn()`, read in
 * pages), then those VMs by key, `GET_BATCH` per request. The cost grows
 * with the host's VMs, not the cluster's.
 *
 * The reservations are a complete index of `status.host`: every write that
 * sets a VM's host puts its entry in the same transaction, comparing the
 * sums' revision and that the entry is absent (scheduler/place.ts
 * `reserveIn()`); every write that takes a VM off its host or deletes it
 * releases it in the same transaction, comparing the entry's and the sums'
 * revisions (scheduler/ledger.ts `releaseIn()`, through tasks/vm_common.ts
 * `releaseAlloc()`); the writes that change only the owning incarnation
 * keep the host (tasks/ownership.ts `take()`, workers/crash.ts). An older
 * version's record only loses entries. The VM document stays the
 * authority: a VM named in the reservations but moved by now is returned
 * as read, for the caller to filter by `status.host` as before. An
 * `alloc/<host>` that cannot be read throws UnreadableError, as releasing
 * any VM of that host would.
 *
 * @example
 * ```ts
 * const { items, unreadable } = await placedOn(store, "h1");
 * const mine = items.filter((v) => v.value.status.host === "h1");
 * ```
 */
import { UnavailableError } from "../core/errors.ts";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import type { Kv, Store, Unreadable } from "../core/store.ts";
import { decodeRawKv, raw, type RawKv } from "../core/watch.ts";
import { reservedOn } from "./ledger.ts";

/** VM documents one read request asks for (etcd takes 128 operations). */
export const GET_BATCH = 64;

/** VMs read for one host; `unreadable`: documents that may be its own. */
export interface PlacedVms {
  items: Kv<Vm>[];
  unreadable: Unreadable[];
}

/**
 * The VMs reserved on `host`, read by key (see the module comment); gone
 * ones are left out. Throws UnavailableError when etcd cannot be read,
 * UnreadableError when `alloc/<host>` cannot.
 */
export async function placedOn(
  store: Store,
  host: string,
): Promise<PlacedVms> {
  const ids = await reservedOn(store, host);
  const out: PlacedVms = { items: [], unreadable: [] };
  for (let i = 0; i < ids.length; i += GET_BATCH) {
    const batch = ids.slice(i, i + GET_BATCH);
    let res;
    try {
      res = await store.client.kv.txn({
        success: batch.map((id) => ({
          request_range: { key: store.full(keys.vm(id)) },
        })),
      });
    } catch (err) {
      throw new UnavailableError(
        `Cannot read the VMs of ${host}: etcd: ${String(err)}`,
        { cause: err },
      );
    }
    for (const r of res.responses) {
      for (const kv of r.response_range.kvs) add(out, raw(store, kv));
    }
  }
  return out;
}

/** Adds one VM document to `out`: its items or its unreadable. */
function add(out: PlacedVms, kv: RawKv): void {
  const vm = decodeRawKv(kv, Vm);
  if ("reason" in vm) out.unreadable.push(vm);
  else out.items.push(vm);
}
