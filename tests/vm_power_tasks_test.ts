/**
 * `vm.stop`, `vm.reboot` and `vm.move` handlers with the sim driver on a
 * real etcd: what reaches the driver from the payload and config, and what
 * the results say.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Task, Vm } from "../core/schemas.ts";
import { owns, type SimHandle } from "../drivers/sim/driver.ts";
import { parseConfig } from "../core/config.ts";
import { PermanentError } from "../tasks/context.ts";
import { newTask } from "../tasks/queue.ts";
import { taskTimeoutMs } from "../tasks/stop_options.ts";
import { vmMove } from "../tasks/vm_move.ts";
import { vmReboot } from "../tasks/vm_reboot.ts";
import { vmStop } from "../tasks/vm_stop.ts";
import { type Bench, vmDoc, withBench } from "./helpers/task_ctx.ts";

/** A running sim VM on `host`; `deaf`: its process ignores SIGTERM. */
async function runningVm(
  b: Bench,
  id: string,
  host: string,
  { deaf = false, desired = "running" as Vm["desired"] } = {},
): Promise<SimHandle> {
  const handle = await b.driver.start({
    id,
    name: id,
    cpus: 1,
    memoryMiB: 128,
    boot: deaf
      ? { kernel: "/k", append: "console=ttyS0 ucloud.ignore_acpi=1" }
      : { disk: "/dev/null", format: "raw" as const },
  });
  await b.putVm(vmDoc(id, { host, handle }, { desired }));
  return handle;
}

async function vm(b: Bench, id: string): Promise<Vm | undefined> {
  return (await b.store.get(keys.vm(id), Vm))?.value;
}

Deno.test("vm.stop shuts the guest down, or stops it hard after payload.timeoutSeconds or with force", async () => {
  await withBench(async (b) => {
    const w = await b.incarnation("h1");
    const gentle = await runningVm(b, "vm-a", "h1", { desired: "stopped" });
    const out = await vmStop(await b.context(w, "vm.stop", { vm: "vm-a" }));
    const r = out.result as { stopped: boolean; how: string; ms: number };
    assert.equal(r.stopped, true);
    assert.equal(r.how, "shutdown");
    assert.ok(r.ms < 5_000, `${r.ms} ms`);
    assert.ok((await out.txn!.commit()).ok);
    assert.equal((await vm(b, "vm-a"))?.status.phase, "stopped");
    assert.equal(await owns(gentle.pid, gentle.pidfile), false);

    const deaf = await runningVm(b, "vm-b", "h1", {
      deaf: true,
      desired: "stopped",
    });
    const late = await vmStop(
      await b.context(w, "vm.stop", { vm: "vm-b", timeoutSeconds: 1 }),
    );
    const lr = late.result as { how: string; ms: number };
    assert.equal(lr.how, "forced");
    assert.ok(lr.ms >= 1_000, `${lr.ms} ms`);
    assert.equal(await owns(deaf.pid, deaf.pidfile), false);

    await runningVm(b, "vm-c", "h1", { deaf: true, desired: "stopped" });
    const forced = await vmStop(
      await b.context(w, "vm.stop", { vm: "vm-c", force: true }),
    );
    const fr = forced.result as { how: string; ms: number };
    assert.equal(fr.how, "forced");
    assert.ok(fr.ms < 1_000, `${fr.ms} ms`);

    await runningVm(b, "vm-d", "h1", { desired: "stopped" });
    await assert.rejects(
      async () =>
        vmStop(
          await b.context(w, "vm.stop", { vm: "vm-d", timeoutSeconds: "9" }),
        ),
      (err) =>
        err instanceof PermanentError &&
        /payload\.timeoutSeconds must be a number above 0/.test(err.message),
    );
  });
});

Deno.test("vm.stop takes the default timeout from worker.stopTimeoutSeconds", async () => {
  await withBench(async (b) => {
    const w = await b.incarnation("h1");
    await runningVm(b, "vm-a", "h1", { deaf: true, desired: "stopped" });
    const ctx = await b.context(w, "vm.stop", { vm: "vm-a" });
    ctx.config = {
      ...ctx.config,
      worker: { ...ctx.config.worker, stopTimeoutSeconds: 1 },
    };
    const r = (await vmStop(ctx)).result as { how: string; ms: number };
    assert.equal(r.how, "forced");
    assert.ok(r.ms >= 1_000 && r.ms < 10_000, `${r.ms} ms`);
  });
});

Deno.test("vm.reboot reboots a running VM in place and leaves its document alone; skips one that does not run", async () => {
  await withBench(async (b) => {
    const w = await b.incarnation("h1");
    const handle = await runningVm(b, "vm-a", "h1");
    const out = await vmReboot(
      await b.context(w, "vm.reboot", { vm: "vm-a", force: true }),
    );
    assert.deepEqual(out.result, { rebooted: true, how: "forced", ms: 0 });
    assert.equal(out.txn, undefined);
    assert.ok(await owns(handle.pid, handle.pidfile));

    await b.putVm(vmDoc("vm-b", { phase: "stopped", host: "h1" }));
    const skipped = await vmReboot(
      await b.context(w, "vm.reboot", { vm: "vm-b" }),
    );
    assert.deepEqual(skipped.result, {
      skipped: "vm is stopped (desired running), not running",
    });
  });
});

Deno.test("vm.move stops the VM gracefully and hands the stop's begin to the new start", async () => {
  await withBench(async (b) => {
    const w = await b.incarnation("h1");
    const handle = await runningVm(b, "vm-a", "h1");
    const before = Date.now();
    const out = await vmMove(
      await b.context(w, "vm.move", {
        vm: "vm-a",
        from: "h1",
        reason: "test",
      }),
    );
    const r = out.result as Record<string, unknown>;
    assert.equal(r.how, "shutdown");
    assert.equal(typeof r.stopMs, "number");
    const since = Date.parse(r.downSince as string);
    assert.ok(since >= before - 1 && since <= Date.now(), String(r.downSince));
    assert.equal(await owns(handle.pid, handle.pidfile), false);
    assert.ok((await out.txn!.commit()).ok);
    const create = await b.store.get(keys.task(r.create as string), Task);
    assert.equal(create?.value.kind, "vm.create");
    assert.equal(create?.value.payload.downSince, r.downSince);
    assert.equal(create?.value.payload.avoid, "h1");
    assert.equal((await vm(b, "vm-a"))?.status.phase, "pending");
  });
});

Deno.test("vm.move run again after its transaction lost a compare reports the first stop and its begin, not a process found gone", async () => {
  await withBench(async (b) => {
    const w = await b.incarnation("h1");
    await runningVm(b, "vm-a", "h1");
    const ctx = await b.context(w, "vm.move", {
      vm: "vm-a",
      from: "h1",
      reason: "test",
    });
    const first = (await vmMove(ctx)).result as Record<string, unknown>;
    assert.equal(first.how, "shutdown");
    // The first transaction is never committed (as when another move off
    // h1 changed alloc/h1 first): the worker runs the handler again.
    const again = await vmMove(ctx);
    const r = again.result as Record<string, unknown>;
    assert.equal(r.how, "shutdown");
    assert.equal(r.stopMs, first.stopMs);
    assert.equal(r.downSince, first.downSince);
    assert.ok((await again.txn!.commit()).ok);
    const create = await b.store.get(keys.task(r.create as string), Task);
    assert.equal(create?.value.payload.downSince, first.downSince);
  });
});

Deno.test("taskTimeoutMs() lets a stop, reboot or move run for the guest's time plus a margin", () => {
  const config = parseConfig({}, () => undefined);
  const task = (kind: string, payload: Record<string, unknown> = {}) =>
    newTask({ kind, target: "h1", payload: { vm: "vm-1", ...payload } });
  assert.equal(taskTimeoutMs(task("vm.start"), config), 120_000);
  assert.equal(taskTimeoutMs(task("vm.stop"), config), 120_000);
  assert.equal(
    taskTimeoutMs(task("vm.stop", { timeoutSeconds: 300 }), config),
    330_000,
  );
  assert.equal(
    taskTimeoutMs(task("vm.reboot", { timeoutSeconds: 3600 }), config),
    3_630_000,
  );
  const slow = parseConfig(
    { worker: { stopTimeoutSeconds: 600 } },
    () => undefined,
  );
  assert.equal(taskTimeoutMs(task("vm.move"), slow), 630_000);
  assert.equal(taskTimeoutMs(task("vm.create"), slow), 120_000);
});
