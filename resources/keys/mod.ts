/**
 * The SSH key resource: a user's OpenSSH public keys, validated
 * (parse.ts), added (create.ts), deleted (delete.ts) and read (view.ts),
 * each user only their own. Imports only core/; the API (api/keys.ts),
 * the SFTP upload's AuthorizedKeysCommand and the metadata service call it.
 *
 * @example
 * ```ts
 * import { authorizedKeys, createKey } from "../resources/keys/mod.ts";
 * await createKey(store, who, { name: "k1", publicKey: line });
 * await authorizedKeys(store, who.name); // [line]
 * ```
 */
export { createKey } from "./create.ts";
export { deleteKey } from "./delete.ts";
export {
  fingerprint,
  KEY_TYPES,
  type KeyType,
  MAX_KEY_LINE_BYTES,
  MIN_RSA_BITS,
  parsePublicKey,
  type PublicKey,
} from "./parse.ts";
export { authorizedKeys, listKeys, readKey, showKey } from "./view.ts";
