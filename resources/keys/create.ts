/**
 * Adding an SSH public key for the caller: the line is validated
 * (parse.ts) and stored as `key/<owner>/<name>` in a transaction that
 * compares its absence, so two adds of one name never both win.
 *
 * @example
 * ```ts
 * const key = await createKey(store, who, { name: "k1", publicKey: line });
 * key.fingerprint; // "SHA256:..."
 * ```
 */
import { ConflictError } from "../../core/errors.ts";
import type { SshKey, SshKeyCreateInput } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import type { Store } from "../../core/store.ts";
import type { Caller } from "../deps.ts";
import { parsePublicKey } from "./parse.ts";

/**
 * Stores `input.publicKey` as `who`'s key `input.name`. Throws
 * InvalidError (field `publicKey`) for a key line that is not accepted,
 * ConflictError when `who` has a key of that name.
 */
export async function createKey(
  store: Store,
  who: Caller,
  input: SshKeyCreateInput,
): Promise<SshKey> {
  const key = await parsePublicKey(input.publicKey);
  const doc: SshKey = {
    name: input.name,
    owner: who.name,
    type: key.type,
    publicKey: key.line,
    fingerprint: key.fingerprint,
    ...(key.comment !== undefined ? { comment: key.comment } : {}),
    createdAt: new Date().toISOString(),
  };
  const at = keys.sshKey(who.name, input.name);
  if (!(await store.txn().ifAbsent(at).put(at, doc).commit()).ok) {
    throw new ConflictError(
      `Cannot add key ${input.name}: ${who.name} already has a key of that name`,
    );
  }
  return doc;
}
