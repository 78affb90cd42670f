/**
 * The VM resource functions without HTTP, against a real etcd: what each
 * returns (`done`, `task`) and what it writes (VM, task, queue, NICs).
 */
import assert from "node:assert/strict";
import { ConflictError } from "../../core/errors.ts";
import { keys } from "../../core/keys.ts";
import { IpamEntry, Task, Vm, VmCreateInput } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { etcdTest } from "../_fixture.ts";
import { createNetwork } from "../networks/create.ts";
import { createVm } from "./create.ts";
import { deleteVm, rebootVm, startVm, stopVm } from "./lifecycle.ts";
import { attachNic, detachNic } from "./nics.ts";

const ALICE = { name: "alice", admin: false };
const INPUT = VmCreateInput.parse({ name: "web", cpus: 1, memory: 128 });

/** Plays the worker: VM `id` gets `status` (merged), comparing its revision. */
async function setStatus(
  store: Store,
  id: string,
  status: Partial<Vm["status"]>,
  desired?: Vm["desired"],
): Promise<void> {
  const cur = (await store.get(keys.vm(id), Vm))!;
  const next = {
    ...cur.value,
    desired: desired ?? cur.value.desired,
    status: { ...cur.value.status, ...status },
  };
  assert.ok(
    (await store.txn().ifModRevision(cur.key, cur.modRevision)
      .put(cur.key, next).commit()).ok,
  );
}

/** The ids of the tasks queued for `target`. */
async function queued(store: Store, target: string): Promise<string[]> {
  const prefix = keys.queueOf(target);
  return (await store.keys(prefix)).map((k) => k.slice(prefix.length));
}

etcdTest(
  "VM resource functions against a real etcd",
  async ({ etcd, step }) => {
    await step(
      "createVm() without a placement cache writes a pending VM and vm.create; its key replays it",
      async () => {
        const deps = etcd.deps();
        const first = await createVm(deps, ALICE, INPUT, "k1");
        assert.equal(first.replayed, false);
        assert.equal(first.vm.status.phase, "pending");
        assert.equal(first.task?.kind, "vm.create");
        assert.deepEqual(await queued(deps.store, "any"), [first.task!.id]);
        const again = await createVm(deps, ALICE, INPUT, "k1");
        assert.equal(again.replayed, true);
        assert.equal(again.vm.id, first.vm.id);
        assert.equal(again.task?.id, first.task?.id);
        await assert.rejects(
          createVm(deps, ALICE, { ...INPUT, cpus: 2 }, "k1"),
          (e) =>
            e instanceof ConflictError &&
            e.message ===
              "Idempotency-Key k1 was used with a different request",
        );
        assert.equal((await deps.store.keys(keys.vms)).length, 1);
      },
    );

    await step(
      "stopVm() of a stopped VM is done and writes nothing",
      async () => {
        const deps = etcd.deps();
        const { vm } = await createVm(deps, ALICE, INPUT);
        await setStatus(
          deps.store,
          vm.id,
          { phase: "stopped", host: "h1" },
          "stopped",
        );
        const before = (await deps.store.get(keys.vm(vm.id), Vm))!;
        const r = await stopVm(deps, ALICE, vm.id, { force: true });
        assert.deepEqual([r.done, r.task], [true, null]);
        const after = (await deps.store.get(keys.vm(vm.id), Vm))!;
        assert.equal(after.modRevision, before.modRevision);
        assert.deepEqual(await queued(deps.store, "h1"), []);
      },
    );

    await step(
      "stopVm() of a running VM writes phase stopping and vm.stop with the power options",
      async () => {
        const deps = etcd.deps();
        const { vm } = await createVm(deps, ALICE, INPUT);
        await setStatus(deps.store, vm.id, { phase: "running", host: "h1" });
        const r = await stopVm(deps, ALICE, vm.id, { timeoutSeconds: 30 });
        assert.equal(r.done, false);
        assert.equal(r.vm.status.phase, "stopping");
        assert.deepEqual(r.task?.payload, { vm: vm.id, timeoutSeconds: 30 });
        assert.deepEqual(await queued(deps.store, "h1"), [r.task!.id]);
      },
    );

    await step(
      "startVm() of a VM without a host queues vm.create and drops its crash record",
      async () => {
        const deps = etcd.deps();
        const { vm } = await createVm(deps, ALICE, INPUT);
        await setStatus(deps.store, vm.id, {
          phase: "error",
          crashes: [{ at: "2026-01-01T00:00:00Z", reason: "exit 1" }],
          reason: "crashed 3 times",
        });
        const r = await startVm(deps, ALICE, vm.id);
        assert.equal(r.task?.kind, "vm.create");
        assert.equal(r.task?.target, "any");
        const doc = (await deps.store.get(keys.vm(vm.id), Vm))!.value;
        assert.equal(doc.status.phase, "pending");
        assert.equal(doc.status.crashes, undefined);
        assert.equal(doc.status.reason, undefined);
      },
    );

    await step(
      "rebootVm() of a running VM writes only vm.reboot, leaving the VM document as it was",
      async () => {
        const deps = etcd.deps();
        const { vm } = await createVm(deps, ALICE, INPUT);
        await assert.rejects(
          rebootVm(deps, ALICE, vm.id),
          (e) =>
            e instanceof ConflictError &&
            e.message ===
              `Cannot reboot VM ${vm.id}: it is pending, not running`,
        );
        await setStatus(deps.store, vm.id, { phase: "running", host: "h1" });
        const before = (await deps.store.get(keys.vm(vm.id), Vm))!;
        const r = await rebootVm(deps, ALICE, vm.id, { force: true });
        assert.deepEqual(r.task?.payload, { vm: vm.id, force: true });
        assert.equal(r.task?.target, "h1");
        const after = (await deps.store.get(keys.vm(vm.id), Vm))!;
        assert.equal(after.modRevision, before.modRevision);
        assert.ok(await deps.store.get(keys.task(r.task!.id), Task));
      },
    );

    await step(
      "deleteVm() twice writes one vm.delete; the second is not done and has no task",
      async () => {
        const deps = etcd.deps();
        const { vm, task } = await createVm(deps, ALICE, INPUT);
        const first = await deleteVm(deps, ALICE, vm.id);
        assert.equal(first.vm.status.phase, "deleting");
        assert.equal(first.task?.kind, "vm.delete");
        const second = await deleteVm(deps, ALICE, vm.id);
        assert.deepEqual([second.done, second.task], [false, null]);
        assert.deepEqual(
          (await queued(deps.store, "any")).sort(),
          [task!.id, first.task!.id].sort(),
        );
        await assert.rejects(
          deleteVm(deps, { name: "bob", admin: false }, vm.id),
          {
            name: "NotFoundError",
          },
        );
      },
    );

    await step(
      "attachNic() on a running VM queues vm.nics; detachNic() off its host frees the NIC at once",
      async () => {
        const deps = etcd.deps();
        const net = await createNetwork(deps, ALICE, {
          name: "lan",
          kind: "private",
          ipv4: "10.0.0.0/29",
        });
        const { vm } = await createVm(deps, ALICE, INPUT);
        await setStatus(deps.store, vm.id, { phase: "running", host: "h1" });
        const a = await attachNic(deps, ALICE, vm.id, net.id);
        assert.equal(a.done, false);
        assert.equal(a.task?.kind, "vm.nics");
        const nic = a.vm.nics[0];
        assert.ok(await deps.store.get(keys.ipamMac(nic.mac), IpamEntry));
        await setStatus(deps.store, vm.id, { phase: "stopped" }, "stopped");
        const d = await detachNic(deps, ALICE, vm.id, nic.slot);
        assert.deepEqual([d.done, d.task, d.vm.nics], [true, null, []]);
        assert.equal(
          await deps.store.get(keys.ipamMac(nic.mac), IpamEntry),
          null,
        );
        assert.equal(
          await deps.store.get(keys.ipamV4(net.id, nic.ipv4!), IpamEntry),
          null,
        );
        assert.deepEqual(await deps.store.keys(keys.netVmsOf(net.id)), []);
      },
    );
  },
);
