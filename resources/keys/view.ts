/**
 * Reading SSH keys. Key names are per user (`key/<owner>/<name>`), so every
 * caller, admins too, reads and lists their own keys; an admin reaches a
 * user's keys by acting as the user (`X-Act-As`). `authorizedKeys()` is
 * what sshd's AuthorizedKeysCommand and the metadata service read.
 *
 * @example
 * ```ts
 * const items = await listKeys(store, who);
 * const lines = await authorizedKeys(store, "alice");
 * ```
 */
import { NotFoundError } from "../../core/errors.ts";
import { SshKey } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import type { Kv, Store } from "../../core/store.ts";
import type { Caller } from "../deps.ts";

/** Reads `who`'s key `name` with its revision; NotFoundError when absent. */
export async function readKey(
  store: Store,
  who: Caller,
  name: string,
): Promise<Kv<SshKey>> {
  const kv = await store.get(keys.sshKey(who.name, name), SshKey);
  if (!kv) throw new NotFoundError("key", name);
  return kv;
}

/** `who`'s keys, by name. */
export async function listKeys(store: Store, who: Caller): Promise<SshKey[]> {
  const { items } = await store.list(keys.sshKeysOf(who.name), SshKey);
  return items.map((kv) => kv.value);
}

/** `who`'s key `name`; NotFoundError when absent. */
export async function showKey(
  store: Store,
  who: Caller,
  name: string,
): Promise<SshKey> {
  return (await readKey(store, who, name)).value;
}

/**
 * The public key lines of `user` (`type base64[ comment]`, validated when
 * added), as an authorized_keys file lists them: one per key, by name.
 */
export async function authorizedKeys(
  store: Store,
  user: string,
): Promise<string[]> {
  const { items } = await store.list(keys.sshKeysOf(user), SshKey);
  return items.map((kv) => kv.value.publicKey);
}
