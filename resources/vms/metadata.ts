/**
 * What a VM's metadata says, for the metadata service of its host and for
 * its owner: `vmMetadata()` gives the instance id, the hostname (the VM's
 * name), the authorized_keys lines of its SSH keys (those it named at
 * create, or all of the owner's, read now: keys added later count, a key
 * deleted since is left out) and its user data. `readUserData()` is the
 * user data as the API's caller may read it.
 *
 * @example
 * ```ts
 * const m = await vmMetadata(store, "vm-1");
 * m.keys; // ["ssh-ed25519 AAAA... alice@laptop"]
 * ```
 */
import { NotFoundError } from "../../core/errors.ts";
import { SshKey } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import { UserData, Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import type { Caller } from "../deps.ts";
import { readVm } from "./view.ts";

/** A VM's metadata, as a metadata service serves it. */
export interface VmMetadata {
  instanceId: string;
  hostname: string;
  /**
   * authorized_keys lines (`type base64[ comment]`): the VM's keys in the
   * order it named them, or all of the owner's by name.
   */
  keys: string[];
  /** The names of `keys`, in the same order. */
  keyNames: string[];
  userData?: string;
}

/**
 * The metadata of VM `vmId`, read now; NotFoundError when there is no
 * such VM. No caller: the metadata service has identified the VM.
 */
export async function vmMetadata(
  store: Store,
  vmId: string,
): Promise<VmMetadata> {
  const vm = await store.get(keys.vm(vmId), Vm);
  if (!vm) throw new NotFoundError("vm", vmId);
  const { owner, spec } = vm.value;
  const userData = vm.value.userData
    ? (await store.get(keys.userData(vmId), UserData))?.value.data
    : undefined;
  const found = spec.keys
    ? await namedKeys(store, owner, spec.keys)
    : (await store.list(keys.sshKeysOf(owner), SshKey)).items.map((kv) =>
      kv.value
    );
  return {
    instanceId: vmId,
    hostname: spec.name,
    keys: found.map((k) => k.publicKey),
    keyNames: found.map((k) => k.name),
    ...(userData === undefined ? {} : { userData }),
  };
}

/** `owner`'s keys `names` that still exist, in order. */
async function namedKeys(
  store: Store,
  owner: string,
  names: string[],
): Promise<SshKey[]> {
  const found = await Promise.all(
    names.map((n) => store.get(keys.sshKey(owner, n), SshKey)),
  );
  return found.filter((k) => k !== null).map((k) => k.value);
}

/**
 * The user data of a VM `who` may see; NotFoundError for a VM `who` may
 * not see, or one without user data.
 */
export async function readUserData(
  store: Store,
  who: Caller,
  id: string,
): Promise<string> {
  await readVm(store, who, id);
  const doc = await store.get(keys.userData(id), UserData);
  if (!doc) throw new NotFoundError("user data of vm", id);
  return doc.value.data;
}
