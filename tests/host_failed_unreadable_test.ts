/**
 * `host.failed` and VM documents it cannot read (a newer release wrote
 * them, or they are corrupt): such a VM cannot be evacuated safely, so it
 * stays where it is, is listed in the result, and a follow-up failover runs
 * later, which evacuates it once it can be read (real etcd, the handler
 * outside a worker as in tests/ownership_test.ts).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { keys } from "../core/keys.ts";
import { Task, Vm } from "../core/schemas.ts";
import { hostFailed, RECHECKS } from "../tasks/host_failed.ts";
import { reserveOn, vmDoc, withBench } from "./helpers/task_ctx.ts";

Deno.test("hostFailed() lists a VM whose document it cannot read and checks again later; the next run evacuates it", async () => {
  await withBench(async (b) => {
    const dead = await b.incarnation("h1", 1);
    await b.store.revokeLease(dead.lease);
    const helper = await b.incarnation("h2");
    await b.putVm(vmDoc("vm-ok", { host: "h1", incarnation: dead.lease }));
    const future = {
      ...vmDoc("vm-new", { host: "h1", incarnation: dead.lease }),
      desired: "hibernated",
    };
    await b.store.client.kv.put({
      key: b.store.full(keys.vm("vm-new")),
      value: Buffer.from(JSON.stringify(future)),
    });
    await reserveOn(b.store, "h1", "vm-new");
    const payload = { host: "h1", incarnation: dead.lease };
    const ctx = await b.context(helper, "host.failed", payload);
    const out = await hostFailed(ctx);
    const r = out.result as Record<string, unknown>;
    assert.deepEqual(r.evacuated, ["vm-ok"]);
    assert.deepEqual(
      (r.unreadable as { vm: string }[]).map((u) => u.vm),
      ["vm-new"],
    );
    assert.match((r.unreadable as { reason: string }[])[0].reason, /desired/);
    assert.equal(r.unreadableCount, 1);
    assert.ok(out.txn, "no follow-up");
    assert.ok((await out.txn.commit()).ok);
    const next = (await b.store.get(keys.task(r.recheck as string), Task))!
      .value;
    assert.equal(next.kind, "host.failed");
    assert.deepEqual(next.payload, { ...payload, recheck: 1 });
    assert.ok(next.notBefore >= Date.now() + 20_000);
    assert.equal(r.recheckInMs, 30_000);

    // The newer release's field is gone (or understood): the follow-up
    // evacuates it.
    await b.putVm(vmDoc("vm-new", { host: "h1", incarnation: dead.lease }));
    const again = await b.context(helper, "host.failed", next.payload);
    const out2 = await hostFailed(again);
    const r2 = out2.result as Record<string, unknown>;
    assert.deepEqual(r2.evacuated, ["vm-new"]);
    assert.equal(r2.unreadable, undefined);
    assert.equal(out2.txn, undefined);
    const vm = (await b.store.get(keys.vm("vm-new"), Vm))!.value;
    assert.equal(vm.status.phase, "pending");

    // Bounded: after the last recheck it only reports.
    await b.store.client.kv.put({
      key: b.store.full(keys.vm("vm-bad")),
      value: Buffer.from("{not json"),
    });
    await reserveOn(b.store, "h1", "vm-bad");
    const last = await b.context(helper, "host.failed", {
      ...payload,
      recheck: RECHECKS,
    });
    const out3 = await hostFailed(last);
    assert.equal(out3.txn, undefined);
    assert.deepEqual(
      ((out3.result as Record<string, unknown>).unreadable as { vm: string }[])
        .map((u) => u.vm),
      ["vm-bad"],
    );
  });
});
