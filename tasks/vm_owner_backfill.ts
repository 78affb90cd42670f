/**
 * The owner index backfill of the maintenance round
 * (tasks/maintenance_round.ts): once in a cluster's life, it reads every VM
 * document in pages of `BATCH` and writes the owner index entries
 * (`vmowner/<owner>/<vm>`, resources/vms/owner_index.ts) that are missing,
 * one transaction per page comparing each VM's revision, that the entries
 * are still absent, and the round's lock; then `vmowner-backfilled`, after
 * which listings by owner read only the index. A page whose compare fails
 * (a VM changed or was deleted meanwhile) is done again VM by VM from
 * fresh reads. Exact: a VM created meanwhile writes its own entry, and one
 * deleted meanwhile fails the compare of its revision, so no entry is
 * written for a VM that is gone. A VM that kept changing under `TRIES`
 * reads is left for the next round, which runs the backfill again (no
 * mark). A VM document that cannot be read has no owner to index: it is
 * left out, as listings skip it anyway.
 *
 * @example
 * ```ts
 * const r = await backfillOwners(store, { by: "h1", fence });
 * console.log(r.written);
 * ```
 */
import { keys } from "../core/keys.ts";
import { Vm, VmOwnerEntry, VmOwnersBackfilled } from "../core/schemas.ts";
import type { Kv, Store } from "../core/store.ts";
import { ascendingPage } from "../core/store_page.ts";
import { indexOwner } from "../resources/vms/owner_index.ts";
import type { BackfillOptions } from "./usage_backfill.ts";

/** VMs per page and transaction (2 compares and 1 put each, under 128). */
export const BATCH = 40;
/** Tries of one VM whose document keeps changing under the backfill. */
const TRIES = 5;

/** What the owner index backfill did. */
export interface OwnerBackfillResult {
  /** Owner index entries written. */
  written: number;
  /** VM documents read. */
  vms: number;
  /** VMs that kept changing: left for the next round (no mark written). */
  changing: number;
  /** True when the backfill ran before (nothing read). */
  done: boolean;
  /** True when the round lost its lock (no mark written). */
  fenced: boolean;
}

/** Runs the backfill (see the module comment) unless it ran before. */
export async function backfillOwners(
  store: Store,
  opts: BackfillOptions,
): Promise<OwnerBackfillResult> {
  const r = { written: 0, vms: 0, changing: 0, done: false, fenced: false };
  if (await store.get(keys.vmOwnersBackfilled, VmOwnersBackfilled)) {
    return { ...r, done: true };
  }
  let position: string | undefined;
  do {
    const page = await ascendingPage(store, keys.vms, Vm, {
      limit: BATCH,
      position,
      scanMax: BATCH,
    });
    r.vms += page.items.length;
    const missing = await missingEntries(store, page.items);
    if (missing.length && !(await writeEntries(opts, missing))) {
      if (!(await opts.fence().commit()).ok) return { ...r, fenced: true };
      for (const vm of missing) {
        const one = await writeOne(store, opts, vm);
        if (one === "fenced") return { ...r, fenced: true };
        if (one === "written") r.written++;
        if (one === "changing") r.changing++;
      }
    } else r.written += missing.length;
    position = page.next ?? undefined;
  } while (position !== undefined);
  if (r.changing) return r;
  const mark: VmOwnersBackfilled = {
    by: opts.by,
    at: (opts.now ?? new Date()).toISOString(),
    vms: r.vms,
  };
  const k = keys.vmOwnersBackfilled;
  const done = await opts.fence().ifAbsent(k).put(k, mark).commit();
  if (!done.ok && !(await opts.fence().commit()).ok) {
    return { ...r, fenced: true };
  }
  return r;
}

/** The VMs of `vms` without their owner index entry. */
async function missingEntries(store: Store, vms: Kv<Vm>[]): Promise<Kv<Vm>[]> {
  const entry = (vm: Kv<Vm>) => keys.vmOwner(vm.value.owner, vm.value.id);
  const { items, unreadable } = await store.getMany(
    vms.map(entry),
    VmOwnerEntry,
  );
  const present = new Set([...items, ...unreadable].map((e) => e.key));
  return vms.filter((vm) => !present.has(entry(vm)));
}

/** Writes the entries of `vms` in one transaction; false on a lost compare. */
async function writeEntries(
  opts: BackfillOptions,
  vms: Kv<Vm>[],
): Promise<boolean> {
  const txn = opts.fence();
  for (const vm of vms) {
    const entry = keys.vmOwner(vm.value.owner, vm.value.id);
    indexOwner(
      txn.ifModRevision(vm.key, vm.modRevision).ifAbsent(entry),
      vm.value,
    );
  }
  return (await txn.commit()).ok;
}

/** Writes one VM's entry from fresh reads unless it is gone or has one. */
async function writeOne(
  store: Store,
  opts: BackfillOptions,
  vm: Kv<Vm>,
): Promise<"written" | "present" | "gone" | "changing" | "fenced"> {
  for (let n = 0; n < TRIES; n++) {
    const cur = n ? await store.get(vm.key, Vm) : vm;
    if (!cur) return "gone";
    if (!(await missingEntries(store, [cur])).length) return "present";
    if (await writeEntries(opts, [cur])) return "written";
    if (!(await opts.fence().commit()).ok) return "fenced";
  }
  return "changing";
}
