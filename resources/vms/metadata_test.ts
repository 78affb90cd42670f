/**
 * `vmMetadata()` against a real etcd: the keys a VM named or all of its
 * owner's (read at each call: added keys count, deleted ones are left
 * out), its hostname and its user data.
 */
import assert from "node:assert/strict";
import { NotFoundError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { VmCreateInput } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { etcdTest } from "../_fixture.ts";
import { sshKeygen } from "../keys/_keygen.ts";
import { createKey } from "../keys/create.ts";
import { deleteKey } from "../keys/delete.ts";
import { createVm } from "./create.ts";
import { vmMetadata } from "./metadata.ts";
import { planMetadata } from "./metadata_input.ts";

const ALICE = { name: "alice", admin: false };
const BOB = { name: "bob", admin: false };

etcdTest(
  "vmMetadata() gives a VM's named keys or all of its owner's, as they are now",
  async ({ etcd, step }) => {
    const dir = await Deno.makeTempDir({ prefix: "ucloud-vmmeta-" });
    try {
      const deps = etcd.deps();
      const { store } = deps;
      const line: Record<string, string> = {};
      const add = async (who: typeof ALICE, name: string) => {
        const publicKey = (await sshKeygen(dir, "ed25519", undefined, name))
          .line;
        line[name] = (await createKey(store, who, { name, publicKey }))
          .publicKey;
      };
      for (const k of ["k1", "k2", "k3"]) await add(ALICE, k);
      await add(BOB, "b1");
      const create = async (more: Partial<VmCreateInput>) =>
        (await createVm(
          deps,
          ALICE,
          VmCreateInput.parse({ name: "web", cpus: 1, memory: 128, ...more }),
        )).vm.id;
      const named = await create({
        name: "named",
        keys: ["k3", "k1"],
        userData: "#cloud-config\n",
      });
      const all = await create({ name: "all" });
      const keysOf = async (s: Store, id: string) =>
        (await vmMetadata(s, id)).keys;

      await step(
        "several named keys, in their order, with hostname and user data",
        async () => {
          assert.deepEqual(await vmMetadata(store, named), {
            instanceId: named,
            hostname: "named",
            keys: [line.k3, line.k1],
            keyNames: ["k3", "k1"],
            userData: "#cloud-config\n",
          });
        },
      );

      await step(
        "no keys named: all of the owner's, also those added later",
        async () => {
          assert.deepEqual(await vmMetadata(store, all), {
            instanceId: all,
            hostname: "all",
            keys: [line.k1, line.k2, line.k3],
            keyNames: ["k1", "k2", "k3"],
          });
          await add(ALICE, "k4");
          assert.deepEqual(await keysOf(store, all), [
            line.k1,
            line.k2,
            line.k3,
            line.k4,
          ]);
          assert.deepEqual(await keysOf(store, named), [line.k3, line.k1]);
        },
      );

      await step("a key deleted later is left out", async () => {
        await deleteKey(store, ALICE, "k1");
        assert.deepEqual(await keysOf(store, named), [line.k3]);
        assert.deepEqual(await keysOf(store, all), [
          line.k2,
          line.k3,
          line.k4,
        ]);
      });

      await step(
        "planMetadata(): a key deleted before the create commits makes the txn lose",
        async () => {
          const input = VmCreateInput.parse({
            name: "late",
            cpus: 1,
            memory: 128,
            keys: ["k2"],
          });
          const plan = await planMetadata(store, "alice", "vm-late", input);
          assert.ok(await plan.fresh());
          await deleteKey(store, ALICE, "k2");
          assert.equal(await plan.fresh(), false);
          const txn = plan.apply(store.txn().put(keys.vm("vm-late"), {}));
          assert.equal((await txn.commit()).ok, false);
          await assert.rejects(
            planMetadata(store, "alice", "vm-late", input),
            /Cannot find SSH key k2 of alice/,
          );
        },
      );

      await step("an unknown VM is NotFoundError", async () => {
        await assert.rejects(vmMetadata(store, "vm-nope"), NotFoundError);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
