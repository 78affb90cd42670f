/**
 * Deleting one of the caller's SSH keys, in a transaction comparing the
 * revision read. Whatever reads `authorizedKeys()` at each login (the
 * SFTP upload's sshd) no longer gets it.
 *
 * @example
 * ```ts
 * await deleteKey(store, who, "k1"); // NotFoundError when who has no k1
 * ```
 */
import { ConflictError } from "../../core/errors.ts";
import type { Store } from "../../core/store.ts";
import type { Caller } from "../deps.ts";
import { readKey } from "./view.ts";

/**
 * Deletes `who`'s key `name`. Throws NotFoundError when `who` has none of
 * that name, ConflictError when it changed meanwhile.
 */
export async function deleteKey(
  store: Store,
  who: Caller,
  name: string,
): Promise<void> {
  const kv = await readKey(store, who, name);
  const txn = store.txn().ifModRevision(kv.key, kv.modRevision).delete(kv.key);
  if (!(await txn.commit()).ok) {
    throw new ConflictError(
      `Cannot delete key ${name}: it changed meanwhile; try again`,
    );
  }
}
