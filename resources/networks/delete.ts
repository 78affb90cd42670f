/**
 * Deleting a network: only its owner (or an admin), only while no VM has
 * a NIC in it, and together with the release of its VNI and /64, in one
 * transaction comparing the revision read and that no member key
 * (`netvm/<network>/`) exists: a NIC add compares the network's revision,
 * so of a delete and an add that race, exactly the first to commit wins.
 *
 * @example
 * ```ts
 * await deleteNetwork(store, who, "net-1"); // ConflictError while VMs use it
 * ```
 */
import { ConflictError, ForbiddenError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import type { Store } from "../../core/store.ts";
import { type Caller, canSee } from "../deps.ts";
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
  // "No key under the prefix created after revision 0": none at all.
  const txn = releaseIpam(
    store.txn().ifModRevision(n.key, n.modRevision)
      .ifNoneCreatedSince(prefix, "0").delete(n.key),
    n.value,
  );
  if (!(await txn.commit()).ok) {
    throw new ConflictError(
      `Cannot delete network ${id}: it changed meanwhile (a VM was attached?); try again`,
    );
  }
}
