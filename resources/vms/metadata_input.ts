/**
 * The metadata inputs of a new VM: the SSH keys it names (each must be
 * one of the owner's keys at create; the create transaction compares their
 * revisions, so a key deleted meanwhile is not taken) and its user data,
 * written to `userdata/<id>` in that same transaction. The VM document
 * keeps the key names (`spec.keys`) and the user data's size and SHA-256.
 *
 * @example
 * ```ts
 * const meta = await planMetadata(store, "alice", vm.id, input);
 * meta.apply(store.txn().put(keys.vm(vm.id), { ...vm, spec: meta.spec }));
 * ```
 */
import { InvalidError } from "../../core/errors.ts";
import { SshKey } from "../../core/image_schemas.ts";
import { keys } from "../../core/keys.ts";
import type {
  UserData,
  Vm,
  VmCreateInput,
  VmSpec,
} from "../../core/schemas.ts";
import type { Kv, Store, Txn } from "../../core/store.ts";

/** What a create writes for a VM's metadata. */
export interface MetadataPlan {
  /** The VM's spec: the input without its user data. */
  spec: VmSpec;
  /** The user data's size and SHA-256, for the VM document. */
  userData?: Vm["userData"];
  /** Adds the compares of the named keys and the user data's write. */
  apply(txn: Txn): Txn;
  /** False when a named key changed since planning: plan again. */
  fresh(): Promise<boolean>;
}

/**
 * Plans the metadata of VM `vm` of `owner` from `input`. Throws
 * InvalidError (field `keys.<i>`) for a key name `owner` has no key of.
 */
export async function planMetadata(
  store: Store,
  owner: string,
  vm: string,
  input: VmCreateInput,
): Promise<MetadataPlan> {
  const { userData, ...spec } = input;
  const named: Kv<SshKey>[] = [];
  for (const [i, name] of (spec.keys ?? []).entries()) {
    const key = await store.get(keys.sshKey(owner, name), SshKey);
    if (!key) {
      throw new InvalidError(
        `keys.${i}`,
        `Cannot find SSH key ${name} of ${owner}`,
      );
    }
    named.push(key);
  }
  const doc: UserData | undefined = userData === undefined
    ? undefined
    : { vm, data: userData };
  return {
    spec,
    ...(userData === undefined ? {} : { userData: await summary(userData) }),
    apply(txn) {
      for (const k of named) txn.ifModRevision(k.key, k.modRevision);
      return doc ? txn.put(keys.userData(vm), doc) : txn;
    },
    async fresh() {
      for (const k of named) {
        const now = await store.get(k.key, SshKey);
        if (now?.modRevision !== k.modRevision) return false;
      }
      return true;
    },
  };
}

/** The size in bytes (UTF-8) and the hex SHA-256 of `data`. */
async function summary(
  data: string,
): Promise<{ bytes: number; sha256: string }> {
  const bytes = new TextEncoder().encode(data);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const sha256 = Array.from(hash, (b) => b.toString(16).padStart(2, "0"))
    .join("");
  return { bytes: bytes.length, sha256 };
}
