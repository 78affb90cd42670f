/**
 * Deleting a network: only its owner (or an admin), only while no VM has
 * a NIC in it, and together with the release of its VNI and /64, in one
 * transaction comparing the revision read (a VM attached meanwhile fails
 * it).
 *
 * @example
 * ```ts
 * await deleteNetwork(store, who, "net-1"); // ConflictError while VMs use it
 * ```
 */
import { ConflictError, ForbiddenError } from "../../core/errors.ts";
import type { Store } from "../../core/store.ts";
import { type Caller, canSee } from "../deps.ts";
import { releaseIpam } from "./ipam.ts";
import { readNetwork } from "./view.ts";

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
  if (n.value.vms.length > 0) {
    throw new ConflictError(
      `Cannot delete network ${id}: VMs ${
        n.value.vms.join(", ")
      } have NICs in it; detach them first`,
    );
  }
  const txn = releaseIpam(
    store.txn().ifModRevision(n.key, n.modRevision).delete(n.key),
    n.value,
  );
  if (!(await txn.commit()).ok) {
    throw new ConflictError(
      `Cannot delete network ${id}: it changed meanwhile (a VM was attached?); try again`,
    );
  }
}
