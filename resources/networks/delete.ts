/**
 * Deleting a network: only its owner (or an admin), only while no VM has
 * a NIC in it, and together with the release of its VNI and /64, in one
 * transaction comparing the revision read and that no member key
 * (`netvm/<network>/`) exists (a NIC add compares the network's revision,
 * so of a delete and an add that race, exactly the first to commit wins),
 * together with the lowering of its owner's usage (resources/quotas/, whose
 * compare is retried while other changes of the owner win it).
 *
 * @example
 * ```ts
 * await deleteNetwork(store, who, "net-1"); // ConflictError while VMs use it
 * ```
 */
import { ConflictError, ForbiddenError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { NO_USAGE } from "../../core/quota_schemas.ts";
import type { Store } from "../../core/store.ts";
import { type Caller, canSee } from "../deps.ts";
import {
  changeUsage,
  NETWORK_AMOUNTS,
  readUsage,
  usageFresh,
} from "../quotas/usage.ts";
import { releaseIpam } from "./ipam.ts";
import { readNetwork } from "./view.ts";

/** How many of the VMs that keep a network in use a refusal names. */
const NAMED = 10;

/**
 * Deletes network `id`. Throws NotFoundError when `who` may not see it,
 * ForbiddenError when it is not `who`'s (a public one of an admin),
 * ConflictError while VMs have NICs in it or when it changed meanwhile.
 */
export async function deleteNetwork(
  store: Store,
  who: Caller,
  id: string,
): Promise<void> {
  const n = await readNetwork(store, who, id);
  if (!canSee(who, n.value.owner)) {
    throw new ForbiddenError(
      `Cannot delete network ${id}: it is not ${who.name}'s`,
    );
  }
  const prefix = keys.netVmsOf(id);
  const members = (await store.keys(prefix, NAMED))
    .map((k) => k.slice(prefix.length));
  const users = [...n.value.vms, ...members];
  if (users.length > 0) {
    const more = users.length >= NAMED ? " (and maybe more)" : "";
    throw new ConflictError(
      `Cannot delete network ${id}: VMs ${
        users.slice(0, NAMED).join(", ")
      }${more} have NICs in it; detach them first`,
    );
  }
  for (let i = 0; i < ATTEMPTS; i++) {
    const usage = await readUsage(store, n.value.owner);
    // "No key under the prefix created after revision 0": none at all.
    const txn = releaseIpam(
      store.txn().ifModRevision(n.key, n.modRevision)
        .ifNoneCreatedSince(prefix, "0").delete(n.key),
      n.value,
    );
    changeUsage(txn, usage, NO_USAGE, NETWORK_AMOUNTS);
    if ((await txn.commit()).ok) return;
    if (await usageFresh(store, usage)) break;
  }
  throw new ConflictError(
    `Cannot delete network ${id}: it changed meanwhile (a VM was attached?); try again`,
  );
}

/** How often a delete is tried while its owner's usage changes. */
const ATTEMPTS = 20;
