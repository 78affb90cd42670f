/**
 * A VM stopped or deleted through the API while its `vm.start` boots it
 * (found by the nemesis with qemu, whose start takes a few tenths of a
 * second): the start's `running` write loses, so the process it started is
 * recorded nowhere; it must not outlive the task. Real etcd, sim driver.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import { SimDriver } from "../drivers/sim/driver.ts";
import type { DriverSpec } from "../tasks/context.ts";
import { complete } from "../tasks/queue.ts";
import { vmDelete } from "../tasks/vm_delete.ts";
import { vmStart } from "../tasks/vm_start.ts";
import { vmStop } from "../tasks/vm_stop.ts";
import { waitFor } from "./helpers/cluster.ts";
import { type Bench, vmDoc, withBench } from "./helpers/task_ctx.ts";

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

/**
 * Runs `vm.start` of a VM on h1 whose desired state the API sets to
 * `desired` (as api/vms.ts does: phase `stopping`/`deleting`) while the
 * process starts, then the worker's second run of the handler (its
 * `running` write lost); returns the context for the follow-up task.
 */
async function startRacedBy(
  b: Bench,
  id: string,
  desired: "stopped" | "deleted",
) {
  const h1 = await b.incarnation("h1");
  await b.putVm(vmDoc(id, { phase: "scheduled", host: "h1" }));
  const racing = new SimDriver({ stateDir: b.driver.stateDir });
  const driver = Object.assign(Object.create(racing), {
    start: async (spec: DriverSpec) => {
      const h = await racing.start(spec);
      const cur = (await b.store.get(keys.vm(id), Vm))!;
      const phase = desired === "stopped" ? "stopping" : "deleting";
      const vm = {
        ...cur.value,
        desired,
        status: { ...cur.value.status, phase },
      };
      const txn = b.store.txn().ifModRevision(cur.key, cur.modRevision);
      assert.ok((await txn.put(cur.key, vm).commit()).ok);
      return h;
    },
  });
  const ctx = await b.context(h1, "vm.start", { vm: id }, driver);
  const out = await vmStart(ctx);
  assert.equal(
    await complete(b.store, ctx.task, h1, out.result, out.txn),
    false,
    "the running write must lose against the API's change",
  );
  assert.deepEqual(await liveSims(b.driver), [id]);
  const again = await vmStart({ ...ctx, driver: b.driver });
  assert.equal(
    (again.result as { skipped?: string }).skipped,
    `vm desired state is ${desired}`,
  );
  return { h1, ctx };
}

Deno.test("vmStart() kills the process it started when the VM was stopped while it booted", async () => {
  await withBench(async (b) => {
    const { h1 } = await startRacedBy(b, "vm-s", "stopped");
    // SIGKILL is asynchronous: the process is gone a moment later.
    await waitFor(
      "the sim process gone",
      async () => (await liveSims(b.driver)).length === 0,
      5_000,
      20,
    );
    // The stop the API enqueued then finds nothing to stop.
    const stop = await b.context(h1, "vm.stop", { vm: "vm-s" });
    const out = await vmStop(stop);
    assert.ok(await complete(b.store, stop.task, h1, out.result, out.txn));
    const vm = (await b.store.get(keys.vm("vm-s"), Vm))!.value;
    assert.equal(vm.status.phase, "stopped");
    assert.deepEqual(await liveSims(b.driver), []);
  });
});

Deno.test("vmStart() kills the process it started when the VM was deleted while it booted", async () => {
  await withBench(async (b) => {
    const { h1 } = await startRacedBy(b, "vm-d", "deleted");
    await waitFor(
      "the sim process gone",
      async () => (await liveSims(b.driver)).length === 0,
      5_000,
      20,
    );
    const del = await b.context(h1, "vm.delete", { vm: "vm-d" });
    const out = await vmDelete(del);
    assert.ok(await complete(b.store, del.task, h1, out.result, out.txn));
    assert.equal(await b.store.get(keys.vm("vm-d"), Vm), null);
  });
});
