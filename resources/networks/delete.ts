/**
 * Deleting a network: only its owner (or an admin), only while no VM has
 * a NIC in it, and together with the release of its VNI and /64, in one
 * transaction comparing the revision read (a VM attached meanwhile fails
 * it) and the lowering of its owner's usage (resources/quotas/, whose
 * compare is retried while other changes of the owner win it).
 *
 * @example
 * ```ts
 * await deleteNetwork(store, who, "net-1"); // ConflictError while VMs use it
 * ```
 */
import { ConflictError, ForbiddenError } from "../../core/errors.ts";
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
  for (let i = 0; i < ATTEMPTS; i++) {
    const usage = await readUsage(store, n.value.owner);
    const txn = releaseIpam(
      store.txn().ifModRevision(n.key, n.modRevision).delete(n.key),
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
