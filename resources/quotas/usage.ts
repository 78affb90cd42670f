/**
 * What a user holds (`usage/<user>`), kept exact under concurrency: every
 * create and delete of a VM or network changes the usage document in its
 * own transaction, comparing the revision it read (DESIGN.md rule 1), so
 * of two concurrent creates one loses the compare and reads again.
 *
 * A user without the document (created before quotas existed) gets it
 * computed from their VM and network documents by the first create or
 * delete, written in that change's transaction with the compare "still
 * absent". It is exact: every other create or delete of that user's
 * documents meanwhile writes the usage document too, which fails the
 * compare (documents that cannot be read are not counted; the listing
 * reports them).
 *
 * @example
 * ```ts
 * const u = await readUsage(store, "alice");
 * await changeUsage(store.txn(), u, vmAmounts(vm.spec)).commit();
 * ```
 */
import { keys } from "../../core/keys.ts";
import { NO_USAGE, Usage } from "../../core/quota_schemas.ts";
import { Network, type Vm, Vm as VmSchema } from "../../core/schemas.ts";
import type { Store, Txn } from "../../core/store.ts";

/** A user's usage as read: its document's revision ("0": absent). */
export interface UsageRead {
  owner: string;
  value: Usage;
  modRevision: string;
}

/** What one VM of `spec` takes from its owner's quota. */
export function vmAmounts(
  spec: Pick<Vm["spec"], "cpus" | "memory" | "disk">,
): Usage {
  return {
    ...NO_USAGE,
    vms: 1,
    cpus: spec.cpus,
    memoryMiB: spec.memory,
    diskMiB: (spec.disk ?? 0) * 1024,
  };
}

/** What one network takes from its owner's quota. */
export const NETWORK_AMOUNTS: Usage = { ...NO_USAGE, networks: 1 };

/** `a` minus `b`, each at least 0. */
export function minus(a: Usage, b: Usage): Usage {
  const out = { ...a };
  for (const k of Object.keys(b) as (keyof Usage)[]) {
    out[k] = Math.max(0, a[k] - b[k]);
  }
  return out;
}

function plus(a: Usage, b: Usage): Usage {
  const out = { ...a };
  for (const k of Object.keys(b) as (keyof Usage)[]) out[k] = a[k] + b[k];
  return out;
}

/**
 * Reads `owner`'s usage document, or computes it from their VM and network
 * documents when there is none (revision "0").
 */
export async function readUsage(
  store: Store,
  owner: string,
): Promise<UsageRead> {
  const doc = await store.get(keys.usage(owner), Usage);
  if (doc) return { owner, value: doc.value, modRevision: doc.modRevision };
  return { owner, value: await computeUsage(store, owner), modRevision: "0" };
}

/** `owner`'s usage summed from their VM and network documents. */
export async function computeUsage(
  store: Store,
  owner: string,
): Promise<Usage> {
  const [vms, nets] = await Promise.all([
    store.list(keys.vms, VmSchema),
    store.list(keys.networks, Network),
  ]);
  let u = NO_USAGE;
  for (const vm of vms.items) {
    if (vm.value.owner === owner) u = plus(u, vmAmounts(vm.value.spec));
  }
  for (const n of nets.items) {
    if (n.value.owner === owner) u = plus(u, NETWORK_AMOUNTS);
  }
  return u;
}

/**
 * Adds to `txn` the compare of the usage revision read and the write of
 * the usage plus `add` minus `sub`; returns `txn`.
 */
export function changeUsage(
  txn: Txn,
  u: UsageRead,
  add: Usage,
  sub: Usage = NO_USAGE,
): Txn {
  const key = keys.usage(u.owner);
  return txn.ifModRevision(key, u.modRevision).put(
    key,
    minus(plus(u.value, add), sub),
  );
}

/** Whether `owner`'s usage document is still at the revision read. */
export async function usageFresh(store: Store, u: UsageRead): Promise<boolean> {
  const doc = await store.get(keys.usage(u.owner), Usage);
  return (doc?.modRevision ?? "0") === u.modRevision;
}
