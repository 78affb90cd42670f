/**
 * Creating a VM: its NICs (slots, MACs, addresses) and the VM document
 * with its first task in one transaction. When the placement cache finds a
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
 * user data are metadata_input.ts'.
 *
 * @example
 * ```ts
 * const r = await createVm({ store, config }, who, { name: "web1", cpus: 1, memory: 128 });
 * r.vm.status.phase; // "scheduled" or "pending"
 * ```
 */
import { ConflictError } from "../../core/errors.ts";
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
import { type NicPlan, planNics } from "../networks/nics.ts";
import { ATTEMPTS } from "./change.ts";
import { type MetadataPlan, planMetadata } from "./metadata_input.ts";
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
  for (let i = 0; i < ATTEMPTS; i++) {
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
    const cache = await readyCache(PlacementCache.for(store));
    if (cache) {
      const r = await placeInline(
        deps,
        cache,
        vm,
        who,
        idem,
        now,
        [plan, meta],
        image,
      );
      if (r.placed) return { vm: r.vm, task: r.task, replayed: false };
      if ("taken" in r) return await again();
      if ("stale" in r) continue;
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
    const txn = store.txn().ifAbsent(keys.vm(vm.id)).put(keys.vm(vm.id), vm);
    enqueue(usesImage(txn, image), t, {
      vm: vm.id,
      owner,
      need: needOf(vm),
    });
    plan?.apply(txn);
    meta.apply(txn);
    if (idem) recordKey(txn, owner, idem, vm.id, t.id);
    if ((await txn.commit()).ok) return { vm, task: t, replayed: false };
    if (key !== undefined && await keyTaken(store, owner, key)) {
      return await again();
    }
    if (plan && !await plan.fresh()) continue;
    if (!await meta.fresh()) continue;
    if (image && !await fresh(store, image)) continue;
    throw new ConflictError(`Cannot create VM ${vm.id}: id already taken`);
  }
  throw new ConflictError(
    `Cannot create VM: its networks, image or keys changed ${ATTEMPTS} times while trying; try again`,
  );
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
  [plan, meta]: [NicPlan | null, MetadataPlan],
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
          store.txn().ifAbsent(keys.vm(vm.id)).put(keys.vm(vm.id), placed),
          image,
        ),
        p,
      );
      enqueue(txn, start);
      plan?.apply(txn);
      meta.apply(txn);
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
