/**
 * Idempotent creates: a create with an `Idempotency-Key` records
 * `idem/<owner>/<key>` (the VM, its first task and the hash of the
 * request) in its own transaction, compared absent; a repeat of the same
 * request gets what the first made, a different request with that key a
 * ConflictError. A record is bound to a lease and expires after
 * {@linkcode IDEMPOTENCY_TTL_SECONDS} (24 h, up to a minute more: shared
 * leases, core/lease_pool.ts); the key may then be used again.
 *
 * @example
 * ```ts
 * const idem = await idemKey(store, key, await requestHash(input));
 * recordKey(txn, vm.owner, idem, vm.id, task.id);
 * if (await keyTaken(store, owner, key)) return await replay(store, owner, key, request);
 * ```
 */
import { ConflictError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { leasePool } from "../../core/lease_pool.ts";
import { Idempotency, Task, Vm } from "../../core/schemas.ts";
import type { Store, Txn } from "../../core/store.ts";

/** How long an idempotency key is remembered: 24 hours. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

/**
 * An `Idempotency-Key`, the hash of the request that came with it and the
 * lease its record is bound to.
 */
export interface IdemKey {
  key: string;
  request: string;
  lease: string;
}

/** The `IdemKey` of a create: `key` and `request` with a 24 h lease. */
export async function idemKey(
  store: Store,
  key: string,
  request: string,
): Promise<IdemKey> {
  const lease = await leasePool(store, IDEMPOTENCY_TTL_SECONDS).take();
  return { key, request, lease };
}

/**
 * Adds to `txn` the record that `idem` made VM `vm` and task `task`,
 * compared absent (a lost compare: another create took the key).
 */
export function recordKey(
  txn: Txn,
  owner: string,
  idem: IdemKey,
  vm: string,
  task: string,
): Txn {
  const k = keys.idempotency(owner, idem.key);
  return txn.ifAbsent(k).put(k, { vm, task, request: idem.request }, {
    lease: idem.lease,
  });
}

/** True when `owner`'s `key` is recorded already. */
export async function keyTaken(
  store: Store,
  owner: string,
  key: string,
): Promise<boolean> {
  return !!await store.get(keys.idempotency(owner, key), Idempotency);
}

/** Answers a create whose Idempotency-Key is already taken. */
export async function replay(
  store: Store,
  owner: string,
  key: string,
  request: string,
): Promise<{ vm: Vm; task: Task | null }> {
  const prior = await store.get(keys.idempotency(owner, key), Idempotency);
  if (!prior) {
    throw new ConflictError(
      `Cannot create VM: Idempotency-Key ${key} changed concurrently; try again`,
    );
  }
  if (prior.value.request !== request) {
    throw new ConflictError(
      `Idempotency-Key ${key} was used with a different request`,
    );
  }
  const [pvm, ptask] = await Promise.all([
    store.get(keys.vm(prior.value.vm), Vm),
    store.get(keys.task(prior.value.task), Task),
  ]);
  if (!pvm) {
    throw new ConflictError(
      `Idempotency-Key ${key} created VM ${prior.value.vm}, which no longer exists`,
    );
  }
  return { vm: pvm.value, task: ptask?.value ?? null };
}

/** sha-256 (hex) of the JSON of `value` with object keys sorted. */
export async function requestHash(value: unknown): Promise<string> {
  const data = new TextEncoder().encode(canonicalJson(value));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}
