/**
 * A network's members against a real etcd: one `netvm/<network>/<vm>` key
 * per VM with a NIC in it, so NIC adds do not write (or contend on) the
 * network document, while a network delete still never leaves a NIC on a
 * deleted network. Documents of older versions that list VMs in `vms`
 * are read too.
 */
import assert from "node:assert/strict";
import { ConflictError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { Network, Vm, VmCreateInput } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import type { ResourceDeps } from "../deps.ts";
import { etcdTest } from "../_fixture.ts";
import { createVm } from "../vms/create.ts";
import { attachNic, detachNic } from "../vms/nics.ts";
import { createNetwork } from "./create.ts";
import { deleteNetwork } from "./delete.ts";
import { planNics } from "./nics.ts";
import { showNetwork } from "./view.ts";

const ALICE = { name: "alice", admin: false };
const INPUT = VmCreateInput.parse({ name: "web", cpus: 1, memory: 128 });

/** The VM ids with a member key in network `id`. */
async function members(store: Store, id: string): Promise<string[]> {
  const prefix = keys.netVmsOf(id);
  return (await store.keys(prefix)).map((k) => k.slice(prefix.length)).sort();
}

/** A new private network `lan` of alice's. */
function lan(deps: ResourceDeps) {
  return createNetwork(deps, ALICE, { name: "lan", kind: "private" });
}

/** A new `lan` and a VM of alice's with a NIC in it. */
async function lanWithVm(deps: ResourceDeps) {
  const net = await lan(deps);
  const { vm } = await createVm(deps, ALICE, { ...INPUT, networks: [net.id] });
  return { net, vm };
}

etcdTest("network members against a real etcd", async ({ etcd, step }) => {
  await step(
    "createVm() 20 at once with a NIC in one network: all created, the network document is not written",
    async () => {
      const deps = etcd.deps();
      const net = await lan(deps);
      const before = (await deps.store.get(keys.network(net.id), Network))!;
      const made = await Promise.allSettled(
        Array.from(
          { length: 20 },
          () => createVm(deps, ALICE, { ...INPUT, networks: [net.id] }),
        ),
      );
      const failed = made.filter((r) => r.status === "rejected");
      assert.deepEqual(failed, []);
      const after = (await deps.store.get(keys.network(net.id), Network))!;
      assert.equal(after.modRevision, before.modRevision);
      const ids = made.map((r) => r.status === "fulfilled" ? r.value.vm.id : "")
        .sort();
      assert.deepEqual(await members(deps.store, net.id), ids);
      const shown = await showNetwork(deps.store, ALICE, net.id);
      assert.equal(shown.vmCount, 20);
      assert.deepEqual([...shown.vms].sort(), ids);
    },
  );

  await step(
    "detachNic() drops the member key; deleteNetwork() is refused while one is left",
    async () => {
      const deps = etcd.deps();
      const { net, vm } = await lanWithVm(deps);
      await assert.rejects(
        deleteNetwork(deps.store, ALICE, net.id),
        (e) => e instanceof ConflictError && e.message.includes(vm.id),
      );
      await detachNic(deps, ALICE, vm.id, vm.nics[0].slot);
      assert.deepEqual(await members(deps.store, net.id), []);
      await deleteNetwork(deps.store, ALICE, net.id);
      assert.equal(
        await deps.store.get(keys.network(net.id), Network),
        null,
      );
    },
  );

  await step(
    "an attach planned before deleteNetwork() commits is refused after it",
    async () => {
      const deps = etcd.deps();
      const net = await lan(deps);
      const { vm } = await createVm(deps, ALICE, INPUT);
      const plan = await planNics(deps.store, ALICE, vm.id, [net.id]);
      await deleteNetwork(deps.store, ALICE, net.id);
      const txn = plan.apply(deps.store.txn());
      assert.equal((await txn.commit()).ok, false);
      assert.deepEqual(await members(deps.store, net.id), []);
    },
  );

  await step(
    "deleteNetwork() racing attachNic() 30 times: never a NIC on a deleted network",
    async () => {
      const deps = etcd.deps();
      let deleted = 0;
      for (let i = 0; i < 30; i++) {
        const net = await createNetwork(deps, ALICE, {
          name: `lan${i}`,
          kind: "private",
        });
        const { vm } = await createVm(deps, ALICE, INPUT);
        await Promise.allSettled([
          attachNic(deps, ALICE, vm.id, net.id),
          deleteNetwork(deps.store, ALICE, net.id),
        ]);
        const n = await deps.store.get(keys.network(net.id), Network);
        const v = (await deps.store.get(keys.vm(vm.id), Vm))!.value;
        const m = await members(deps.store, net.id);
        if (n) {
          assert.deepEqual(m, [vm.id]);
          assert.equal(v.nics.length, 1);
        } else {
          deleted++;
          assert.deepEqual(m, []);
          assert.deepEqual(v.nics, []);
        }
      }
      console.log(`deleted ${deleted} of 30 networks in the race`);
    },
  );

  await step(
    "a network of an older version with VMs in vms: shown, refuses delete, drained by detach",
    async () => {
      const deps = etcd.deps();
      const { net, vm } = await lanWithVm(deps);
      // As the older version wrote it: the VM in vms, no member key.
      const cur = (await deps.store.get(keys.network(net.id), Network))!;
      assert.ok(
        (await deps.store.txn()
          .put(cur.key, { ...cur.value, vms: [vm.id, "vm-gone"] })
          .delete(keys.netVm(net.id, vm.id)).commit()).ok,
      );
      const shown = await showNetwork(deps.store, ALICE, net.id);
      assert.deepEqual([shown.vms, shown.vmCount], [
        [vm.id, "vm-gone"],
        2,
      ]);
      await assert.rejects(
        deleteNetwork(deps.store, ALICE, net.id),
        ConflictError,
      );
      await detachNic(deps, ALICE, vm.id, vm.nics[0].slot);
      const left = (await deps.store.get(keys.network(net.id), Network))!;
      assert.deepEqual(left.value.vms, ["vm-gone"]);
    },
  );

  await step(
    "attachNic() adds a member key; a network others own shows them no members",
    async () => {
      const deps = etcd.deps();
      const net = await lan(deps);
      const { vm } = await createVm(deps, ALICE, INPUT);
      await attachNic(deps, ALICE, vm.id, net.id);
      assert.deepEqual(await members(deps.store, net.id), [vm.id]);
      const admin = { name: "root", admin: true };
      assert.equal(
        (await showNetwork(deps.store, admin, net.id)).vmCount,
        1,
      );
    },
  );
});
