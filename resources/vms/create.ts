/**
 * Creating a VM: its NICs (slots, MACs, addresses) and the VM document
 * with its owner index entry (owner_index.ts) and its first task in one
 * transaction. When the placement cache finds a
 * host with room, the VM is placed in that same transaction (phase
 * `scheduled`, its reservation on the host, `vm.start` there; the choice
 * is scheduler/place.ts'); otherwise it is `pending` with `status.reason`
 * and the task is `vm.create`, which places it once a host has room (at
 * most `scheduler.maxPendingVmsPerUser` of a user's VMs wait: pending.ts). With
 * an idempotency key, repeating the same request returns what the first
 * made (idempotency.ts). When `spec.image` names an image document
 * (resources/images `resolveImage`), it must be `ready`; the VM records it
 * as `imageRef` and the create compares the image's revision, so an image
 * deleted meanwhile is not used (a name without a document is an image
 * installed on the hosts by hand, as before). The SSH keys it names and its
 * user data are metadata_input.ts'. The VM counts against its owner's
 * quota (resources/quotas/): the create reads the owner's usage first,
 * refuses what would pass a limit (QuotaError, 403), and writes the new
 * usage in its transaction comparing the revision read, so concurrent
 * creates of one owner are ordered by it (the pending bound counts on it).
 *
 * @example
 * ```ts
 * const r = await createVm({ store, config }, who, { name: "web1", cpus: 1, memory: 128 });
 * r.vm.status.phase; // "scheduled" or "pending"
 * ```
 */
import { ConflictError, QuotaError } from "../../core/errors.ts";
import { keys, newId } from "../../core/keys.ts";
import { Image } from "../../core/image_schemas.ts";
import type { Task, Vm, VmCreateInput } from "../../core/schemas.ts";
import type { Kv, Store, Txn } from "../../core/store.ts";
import { enqueue, newTask } from "../../core/task_doc.ts";
import {
  needOf,
  placeInCache,
  PlacementCache,
  type Policy,
  readyCache,
  reserveIn,
} from "../../scheduler/mod.ts";
import type { Caller, ResourceDeps } from "../deps.ts";
import { resolveImage } from "../images/view.ts";
import { type Charge, chargeFor, vmAmounts } from "../quotas/mod.ts";
import { type NicPlan, planNics } from "../networks/nics.ts";
import { ATTEMPTS } from "./change.ts";
import { type MetadataPlan, planMetadata } from "./metadata_input.ts";
import { indexOwner } from "./owner_index.ts";
import { checkPending } from "./pending.ts";
import {
  type IdemKey,
  idemKey,
  keyTaken,
  recordKey,
  replay,
  requestHash,
} from "./idempotency.ts";

/**
 * How many times a create is tried while other creates of the same owner
 * win the compare of its usage document (each round one of them wins).
 */
const CONTENDED = 100;

/**
 * What a create returned: a new VM with its first task, or the replay of
 * an earlier create with the same idempotency key (nothing written; its
 * task is null when that task is gone).
 */
export type Created =
  | { replayed: false; vm: Vm; task: Task }
  | { replayed: true; vm: Vm; task: Task | null };

/** What an inline placement did, unless it gave up with a reason. */
type Inline =
  | { placed: true; vm: Vm; task: Task }
  | { placed: false; taken: true }
  | { placed: false; contended: true }
  | { placed: false; stale: true };

/**
 * Creates a VM owned by `who` from `input` (already schema-valid).
 * Throws InvalidError (field `networks.<i>`) for a network `who` may not
 * use, ConflictError when the key was used with another request, when NIC
 * slots or addresses run out, when its image is not ready, or when its
 * networks or image kept changing.
 */
export async function createVm(
  deps: ResourceDeps,
  who: Caller,
  input: VmCreateInput,
  idempotencyKey?: string,
): Promise<Created> {
  const { store, config } = deps;
  const owner = who.name;
  const key = idempotencyKey;
  const request = key === undefined ? "" : await requestHash(input);
  const idem = key === undefined
    ? undefined
    : await idemKey(store, key, request);
  const again = async (): Promise<Created> => ({
    ...await replay(store, owner, key!, request),
    replayed: true,
  });
  const id = newId("vm");
  for (let n = 0, stale = 0; n < CONTENDED && stale < ATTEMPTS; n++) {
    const now = new Date();
    // NICs: slots, MACs and addresses, taken in the create transaction.
    const plan = input.networks?.length
      ? await planNics(store, who, id, input.networks)
      : null;
    const image = await readyImage(store, owner, input.image);
    const meta = await planMetadata(store, owner, id, input);
    let vm: Vm = {
      id,
      owner,
      spec: meta.spec,
      ...(image
        ? { imageRef: `${image.value.owner}/${image.value.name}` }
        : {}),
      ...(meta.userData ? { userData: meta.userData } : {}),
      nics: plan?.nics ?? [],
      desired: "running",
      status: { phase: "pending", updatedAt: now.toISOString() },
      createdAt: now.toISOString(),
    };
    // What the owner holds, read late (the owner's creates contend on
    // it): its revision, compared by the commit, orders this create after
    // every other of the owner counted here.
    const charge = await chargeOrReplay(deps, owner, input, key);
    if (!charge) return await again();
    const cache = await readyCache(PlacementCache.for(store));
    if (cache) {
      const r = await placeInline(
        deps,
        cache,
        vm,
        who,
        idem,
        now,
        [plan, meta, charge],
        image,
      );
      if (r.placed) return { vm: r.vm, task: r.task, replayed: false };
      if ("taken" in r) return await again();
      if ("contended" in r) {
        await jitter(n);
        continue;
      }
      if ("stale" in r) {
        stale++;
        continue;
      }
      await checkPending(deps, owner, r.reason);
      vm = { ...vm, status: { ...vm.status, reason: r.reason } };
    }
    const t = newTask({
      kind: "vm.create",
      target: "any",
      payload: { vm: vm.id },
      owner,
      maxAttempts: config.tasks.maxAttempts,
      idempotencyKey: key,
      now,
      by: who,
    });
    const txn = indexOwner(
      store.txn().ifAbsent(keys.vm(vm.id)).put(keys.vm(vm.id), vm),
      vm,
    );
    enqueue(usesImage(txn, image), t, {
      vm: vm.id,
      owner,
      need: needOf(vm),
    });
    plan?.apply(txn);
    meta.apply(txn);
    charge.apply(txn);
    if (idem) recordKey(txn, owner, idem, vm.id, t.id);
    if ((await txn.commit()).ok) return { vm, task: t, replayed: false };
    if (key !== undefined && await keyTaken(store, owner, key)) {
      return await again();
    }
    if (!await charge.fresh()) {
      await jitter(n);
      continue;
    }
    stale++;
    if (plan && !await plan.fresh()) continue;
    if (!await meta.fresh()) continue;
    if (image && !await fresh(store, image)) continue;
    throw new ConflictError(`Cannot create VM ${vm.id}: id already taken`);
  }
  throw new ConflictError(
    `Cannot create VM: its networks, image, keys or its owner's usage changed ` +
      `too often while trying; try again`,
  );
}

/**
 * The owner's checked quota charge for a VM of `input`; null when the
 * create is over quota but repeats one with the same idempotency key (it
 * is answered with the replay).
 */
async function chargeOrReplay(
  deps: ResourceDeps,
  owner: string,
  input: VmCreateInput,
  key: string | undefined,
): Promise<Charge | null> {
  try {
    return await chargeFor(deps, owner, vmAmounts(input));
  } catch (err) {
    if (
      err instanceof QuotaError && key !== undefined &&
      await keyTaken(deps.store, owner, key)
    ) return null;
    throw err;
  }
}

/**
 * A random wait before creating again after the `n`th lost usage compare:
 * up to 2^n ms, at most 100.
 */
function jitter(n: number): Promise<void> {
  const ms = Math.random() * Math.min(100, 2 ** n);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The image document VM image `name` of `owner` resolves to, or null (an
 * image installed on the hosts by hand); ConflictError unless it is ready.
 */
async function readyImage(
  store: Store,
  owner: string,
  name: string,
): Promise<Kv<Image> | null> {
  const image = await resolveImage(store, owner, name);
  if (image && image.value.state !== "ready") {
    const why = image.value.reason ? ` (${image.value.reason})` : "";
    throw new ConflictError(
      `Cannot create a VM from image ${name}: it is ${image.value.state}${why}, not ready`,
    );
  }
  return image;
}

/** Adds the compare of the image's revision to a create's `txn`. */
function usesImage(txn: Txn, image: Kv<Image> | null): Txn {
  return image ? txn.ifModRevision(image.key, image.modRevision) : txn;
}

/** Whether the image is still at the revision the create read. */
async function fresh(store: Store, image: Kv<Image>): Promise<boolean> {
  return (await store.get(image.key, Image))?.modRevision ===
    image.modRevision;
}

/**
 * Places a new VM in the transaction that creates it: the VM (phase
 * scheduled), its reservation (scheduler/place.ts `reserveIn()`) and
 * `vm.start` on that host. The scheduler retries a lost compare with the
 * refreshed reservation; gives up with a reason.
 */
async function placeInline(
  { store, config }: ResourceDeps,
  cache: PlacementCache,
  vm: Vm,
  who: Caller,
  idem: IdemKey | undefined,
  now: Date,
  [plan, meta, charge]: [NicPlan | null, MetadataPlan, Charge],
  image: Kv<Image> | null,
): Promise<Inline | { placed: false; reason: string }> {
  const policy: Policy = config.scheduler?.policy ?? "spread";
  const r = await placeInCache<Inline>(
    cache,
    vm.id,
    needOf(vm),
    policy,
    async (p) => {
      const placed: Vm = {
        ...vm,
        status: {
          phase: "scheduled",
          host: p.host,
          // Owned by the incarnation whose alive key the txn compares.
          incarnation: p.lease,
          updatedAt: now.toISOString(),
        },
      };
      const start = newTask({
        kind: "vm.start",
        target: p.host,
        payload: { vm: vm.id },
        owner: vm.owner,
        maxAttempts: config.tasks.maxAttempts,
        idempotencyKey: idem?.key,
        now,
        by: who,
      });
      const txn = reserveIn(
        usesImage(
          indexOwner(
            store.txn().ifAbsent(keys.vm(vm.id)).put(keys.vm(vm.id), placed),
            vm,
          ),
          image,
        ),
        p,
      );
      enqueue(txn, start);
      plan?.apply(txn);
      meta.apply(txn);
      charge.apply(txn);
      if (idem) recordKey(txn, vm.owner, idem, vm.id, start.id);
      const res = await txn.commit();
      if (res.ok) {
        return {
          committed: res.revision,
          value: { placed: true, vm: placed, task: start },
        };
      }
      if (idem && await keyTaken(store, vm.owner, idem.key)) {
        return { value: { placed: false, taken: true } };
      }
      if (!await charge.fresh()) {
        return { value: { placed: false, contended: true } };
      }
      if (
        (plan && !await plan.fresh()) || !await meta.fresh() ||
        (image && !await fresh(store, image))
      ) {
        return { value: { placed: false, stale: true } };
      }
      return "lost";
    },
  );
  return "reason" in r ? { placed: false, reason: r.reason } : r.value;
}
