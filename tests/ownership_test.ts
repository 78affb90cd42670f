/**
 * Ownership of VMs (DESIGN.md rule 7) on real etcd and the sim driver:
 * evacuation, takeover and status writes that race each other.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Network, Task, Vm } from "../core/schemas.ts";
import { SimDriver } from "../drivers/sim/driver.ts";
import type { DriverSpec } from "../tasks/context.ts";
import { evacuate, hostFailed } from "../tasks/host_failed.ts";
import { complete, enqueue, newTask } from "../tasks/queue.ts";
import { vmStart } from "../tasks/vm_start.ts";
import { vmStop } from "../tasks/vm_stop.ts";
import { replace } from "../tasks/vm_common.ts";
import { waitFor } from "./helpers/cluster.ts";
import { vmDoc, withBench } from "./helpers/task_ctx.ts";

Deno.test("evacuate() leaves a VM that a new incarnation of its host took over", async () => {
  await withBench(async (b) => {
    const old = await b.incarnation("h1", 1);
    await b.store.revokeLease(old.lease);
    const now = await b.incarnation("h1");
    const helper = await b.incarnation("h2");
    // Read while the old incarnation owned it; taken over since.
    await b.putVm(vmDoc("vm-a", { host: "h1", incarnation: old.lease }));
    const stale = (await b.store.get(keys.vm("vm-a"), Vm))!;
    await b.putVm(vmDoc("vm-a", { host: "h1", incarnation: now.lease }));
    const fresh = (await b.store.get(keys.vm("vm-a"), Vm))!;
    const ctx = await b.context(helper, "host.failed", {});
    assert.equal(await evacuate(ctx, fresh, "h1", old.lease), "conflict");
    assert.equal(await evacuate(ctx, stale, "h1", old.lease), "conflict");
    const after = (await b.store.get(keys.vm("vm-a"), Vm))!.value;
    assert.equal(after.status.host, "h1");
    assert.equal(after.status.incarnation, now.lease);
  });
});

Deno.test("hostFailed() evacuates what the dead incarnation owned, leaves the new one's", async () => {
  await withBench(async (b) => {
    const old = await b.incarnation("h1", 1);
    await b.store.revokeLease(old.lease);
    const now = await b.incarnation("h1");
    const helper = await b.incarnation("h2");
    await b.putVm(vmDoc("vm-old", { host: "h1", incarnation: old.lease }));
    await b.putVm(vmDoc("vm-new", { host: "h1", incarnation: now.lease }));
    const ctx = await b.context(helper, "host.failed", {
      host: "h1",
      incarnation: old.lease,
    });
    const out = await hostFailed(ctx);
    assert.deepEqual((out.result as { evacuated: string[] }).evacuated, [
      "vm-old",
    ]);
    const vms = (await b.store.list(keys.vms, Vm)).items.map((v) => v.value);
    assert.equal(vms.find((v) => v.id === "vm-old")!.status.phase, "pending");
    assert.equal(vms.find((v) => v.id === "vm-new")!.status.host, "h1");
  });
});

Deno.test("hostFailed() deletes a VM that was being deleted and releases its NIC addresses", async () => {
  await withBench(async (b) => {
    const dead = await b.incarnation("h1", 1);
    await b.store.revokeLease(dead.lease);
    const helper = await b.incarnation("h2");
    const nic = {
      slot: 0,
      network: "net-1",
      mac: "02:c1:0d:00:00:01",
      ipv6: "fdc1:d00::c1:dff:fe00:1",
      state: "attached" as const,
    };
    const net: Network = {
      id: "net-1",
      name: "lan",
      owner: "alice",
      kind: "private",
      prefix: "fdc1:d00::/64",
      vni: 100,
      ra: true,
      dhcp: { v6: false, v4: false },
      vms: ["vm-d"],
      createdAt: new Date().toISOString(),
    };
    await b.store.txn().put(keys.network(net.id), net)
      .put(keys.ipamMac(nic.mac), { network: net.id, vm: "vm-d", slot: 0 })
      .commit();
    await b.putVm(
      vmDoc(
        "vm-d",
        { phase: "deleting", host: "h1", incarnation: dead.lease },
        {
          desired: "deleted",
          nics: [nic],
        },
      ),
    );
    const ctx = await b.context(helper, "host.failed", {
      host: "h1",
      incarnation: dead.lease,
    });
    const out = await hostFailed(ctx);
    assert.deepEqual((out.result as { deleted: string[] }).deleted, ["vm-d"]);
    assert.equal(await b.store.get(keys.vm("vm-d"), Vm), null);
    assert.equal(await b.store.count("ipam/mac/"), 0);
    const after = (await b.store.get(keys.network("net-1"), Network))!.value;
    assert.deepEqual(after.vms, []);
  });
});

Deno.test("hostFailed() moves tasks queued for the dead host to any; a stop there finishes", async () => {
  await withBench(async (b) => {
    const dead = await b.incarnation("h1", 1);
    const vm = vmDoc("vm-s", {
      phase: "stopping",
      host: "h1",
      incarnation: dead.lease,
    }, { desired: "stopped" });
    await b.putVm(vm);
    const stop = newTask({
      kind: "vm.stop",
      target: "h1",
      payload: { vm: "vm-s" },
    });
    await enqueue(b.store.txn(), stop).commit();
    await b.store.revokeLease(dead.lease);
    const helper = await b.incarnation("h2");
    const ctx = await b.context(helper, "host.failed", {
      host: "h1",
      incarnation: dead.lease,
    });
    const out = await hostFailed(ctx);
    assert.deepEqual((out.result as { retargeted: string[] }).retargeted, [
      stop.id,
    ]);
    assert.deepEqual(await b.store.keys(keys.queueOf("h1")), []);
    assert.ok(
      (await b.store.keys(keys.queueOf("any"))).includes(
        keys.queue("any", stop.id),
      ),
    );
    const task = (await b.store.get(keys.task(stop.id), Task))!.value;
    assert.equal(task.target, "any");
    assert.match(task.history.at(-1)!.message!, /host h1 failed/);
    // Run there, it records the evacuated VM stopped.
    const run = await b.context(helper, "vm.stop", { vm: "vm-s" });
    const done = await vmStop(run);
    assert.ok(await complete(b.store, run.task, helper, done.result, done.txn));
    const after = (await b.store.get(keys.vm("vm-s"), Vm))!.value;
    assert.equal(after.status.phase, "stopped");
  });
});

Deno.test("vmStart() never overwrites an evacuation made while it booted, and kills the process it started", async () => {
  await withBench(async (b) => {
    const h1 = await b.incarnation("h1");
    await b.putVm(vmDoc("vm-e", { phase: "scheduled", host: "h1" }));
    // Another writer moves the VM away while its process starts.
    const ref: { ctx?: Awaited<ReturnType<typeof b.context>> } = {};
    const racing = new SimDriver({ stateDir: b.driver.stateDir });
    const driver = Object.assign(Object.create(racing), {
      start: async (spec: DriverSpec) => {
        const h = await racing.start(spec);
        const cur = (await b.store.get(keys.vm("vm-e"), Vm))!;
        const txn = b.store.txn().ifModRevision(cur.key, cur.modRevision);
        replace(ref.ctx!, txn, cur, "moved away by a test");
        assert.ok((await txn.commit()).ok);
        return h;
      },
    });
    const ctx = await b.context(h1, "vm.start", { vm: "vm-e" }, driver);
    ref.ctx = ctx;
    const out = await vmStart(ctx);
    assert.equal(
      await complete(b.store, ctx.task, h1, out.result, out.txn),
      false,
      "the running write must lose against the evacuation",
    );
    const vm = (await b.store.get(keys.vm("vm-e"), Vm))!.value;
    assert.equal(vm.status.phase, "pending");
    assert.equal(vm.status.host, undefined);
    assert.deepEqual(await liveSims(b.driver), ["vm-e"]);
    // The worker runs the handler again: the process it started goes.
    const again = await vmStart({ ...ctx, driver: b.driver });
    assert.equal(
      (again.result as { skipped?: string }).skipped,
      "vm is not placed",
    );
    // SIGKILL is asynchronous: the process is gone a moment later.
    await waitFor(
      "the sim process gone",
      async () => (await liveSims(b.driver)).length === 0,
      5_000,
      20,
    );
  });
});

/** Ids of VMs whose sim process runs in the driver's state dir. */
async function liveSims(driver: SimDriver): Promise<string[]> {
  const live: string[] = [];
  for (const id of await driver.listLocal()) {
    const pid = Number(
      await Deno.readTextFile(`${driver.stateDir}/vms/${id}/sim.pid`).catch(
        () => "0",
      ),
    );
    // A killed process may linger as a zombie: it has no command line.
    const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
    if (pid > 1 && cmd.startsWith("ucloud-sim")) live.push(id);
  }
  return live;
}
