/**
 * What a user holds (`usage/<user>`), kept exact under concurrency: every
 * create and delete of a VM or network changes the usage document in its
 * own transaction, comparing the revision it read (DESIGN.md rule 1), so
 * of two concurrent creates one loses the compare and reads again. Usage
 * documents are never deleted.
 *
 * A user without the document (created before quotas existed) gets it
 * computed from their VM and network documents, written by the first
 * create or delete in that change's transaction with the compare "still
 * absent". It is exact: every other create or delete of that user's
 * documents after the read that found it absent writes the usage document
 * too, which fails the compare (documents that cannot be read are not
 * counted; the listing reports them). So a computed value stays right for
 * as long as the document is absent: it is computed once per user and
 * process (concurrent readers share it) from a paged pass, not per retry.
 * The maintenance round writes every user's document from one paged pass
 * (tasks/usage_backfill.ts) and then `usage-backfilled`: from then on an
 * absent document means nothing held, and no request lists anything.
 *
 * @example
 * ```ts
 * const u = await readUsage(store, "alice");
 * await changeUsage(store.txn(), u, vmAmounts(vm.spec)).commit();
 * ```
 */
import { keys } from "../../core/keys.ts";
import { NO_USAGE, Usage, UsageBackfilled } from "../../core/quota_schemas.ts";
import { Network, type Vm, Vm as VmSchema } from "../../core/schemas.ts";
import type { Store, Txn } from "../../core/store.ts";
import {
  ascendingPage,
  type Page,
  PAGE_SCAN_MAX,
} from "../../core/store_page.ts";

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

/** Computed usages kept per process while their users have no document. */
const KEPT = 10_000;

interface Known {
  /** `usage-backfilled` was seen: an absent document means nothing held. */
  backfilled: boolean;
  /** Owner -> usage computed (or being computed) while absent. */
  computed: Map<string, Promise<Usage>>;
}

const known = new WeakMap<Store, Known>();

function knownOf(store: Store): Known {
  let k = known.get(store);
  if (!k) known.set(store, k = { backfilled: false, computed: new Map() });
  return k;
}

/**
 * Reads `owner`'s usage document, or, when there is none (revision "0"),
 * nothing held once the backfill is done, else the usage computed from
 * their documents (once per process while the document stays absent).
 */
export async function readUsage(
  store: Store,
  owner: string,
): Promise<UsageRead> {
  const k = knownOf(store);
  const doc = await store.get(keys.usage(owner), Usage);
  if (doc) {
    k.computed.delete(owner);
    return { owner, value: doc.value, modRevision: doc.modRevision };
  }
  if (!k.backfilled) {
    k.backfilled = await store.get(keys.usageBackfilled, UsageBackfilled) !==
      null;
  }
  if (k.backfilled) {
    k.computed.clear();
    return { owner, value: NO_USAGE, modRevision: "0" };
  }
  let value = k.computed.get(owner);
  if (!value) {
    value = computeUsage(store, owner);
    value.catch(() => k.computed.delete(owner));
    if (k.computed.size >= KEPT) {
      k.computed.delete(k.computed.keys().next().value!);
    }
    k.computed.set(owner, value);
  }
  return { owner, value: await value, modRevision: "0" };
}

/**
 * Every owner's usage summed from the VM and network documents, read in
 * pages (core/store_page.ts): a document that exists and keeps its key
 * throughout is counted once. `only`: that owner's alone.
 */
export async function sumUsage(
  store: Store,
  only?: string,
): Promise<Map<string, Usage>> {
  const out = new Map<string, Usage>();
  const add = (owner: string, u: Usage) =>
    out.set(owner, plus(out.get(owner) ?? NO_USAGE, u));
  const mine = (v: { owner: string }) => only === undefined || v.owner === only;
  await eachPage(store, keys.vms, VmSchema, mine, (vm) => {
    add(vm.owner, vmAmounts(vm.spec));
  });
  await eachPage(store, keys.networks, Network, mine, (n) => {
    add(n.owner, NETWORK_AMOUNTS);
  });
  return out;
}

/** Calls `f` with every document under `prefix` that `match`es, by page. */
async function eachPage<T>(
  store: Store,
  prefix: string,
  schema: Parameters<typeof ascendingPage<T>>[2],
  match: (value: T) => boolean,
  f: (value: T) => void,
): Promise<void> {
  let position: string | undefined;
  for (;;) {
    const page: Page<T> = await ascendingPage(store, prefix, schema, {
      limit: PAGE_SCAN_MAX,
      position,
      match,
    });
    for (const kv of page.items) f(kv.value);
    if (page.next === null) return;
    position = page.next;
  }
}

/** `owner`'s usage summed from their VM and network documents. */
export async function computeUsage(
  store: Store,
  owner: string,
): Promise<Usage> {
  return (await sumUsage(store, owner)).get(owner) ?? NO_USAGE;
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
