/**
 * `host.failed` and `host.drain` read only the host's VMs, through its
 * reservations (scheduler/placed_on.ts), not every VM in the cluster:
 * counted on the store's etcd client while 1000 VMs of another host sit
 * in etcd. Real etcd, the handlers outside a worker (tests/helpers/task_ctx.ts).
 */
import assert from "node:assert/strict";
import { idOf, keys } from "../core/keys.ts";
import { Host, Vm } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { hostDrain } from "../tasks/host_drain.ts";
import { hostFailed } from "../tasks/host_failed.ts";
import { hostDoc } from "./helpers/placement.ts";
import { reserveOn, vmDoc, withBench } from "./helpers/task_ctx.ts";

/** The ids of the `vm/` documents etcd returns to `store`. */
function vmReads(store: Store): Set<string> {
  const kv = store.client.kv;
  const range = kv.range.bind(kv);
  const txn = kv.txn.bind(kv);
  const ids = new Set<string>();
  const note = (kvs: { key: { toString(): string } }[]) => {
    for (const k of kvs) {
      const rel = store.rel(k.key.toString());
      if (rel.startsWith(keys.vms)) ids.add(idOf(rel));
    }
  };
  kv.range = async (...args: Parameters<typeof range>) => {
    const res = await range(...args);
    note(res.kvs);
    return res;
  };
  kv.txn = async (...args: Parameters<typeof txn>) => {
    const res = await txn(...args);
    for (const r of res.responses) note(r.response_range?.kvs ?? []);
    return res;
  };
  return ids;
}

/** 1000 VMs placed on h2 with their reservations. */
async function crowd(store: Store) {
  const ids = Array.from({ length: 1000 }, (_, i) => `vm-h2-${i}`);
  for (let i = 0; i < ids.length; i += 100) {
    const txn = store.txn();
    for (const id of ids.slice(i, i + 100)) {
      txn.put(keys.vm(id), vmDoc(id, { host: "h2" }));
    }
    await txn.commit();
  }
  for (const id of ids) await reserveOn(store, "h2", id);
}

Deno.test("hostFailed() reads only the failed host's VMs, not 1000 of another host", async () => {
  await withBench(async (b) => {
    const dead = await b.incarnation("h1", 1);
    await b.store.revokeLease(dead.lease);
    const helper = await b.incarnation("h2");
    await crowd(b.store);
    const mine = ["vm-a", "vm-b", "vm-c"];
    for (const id of mine) {
      await b.putVm(vmDoc(id, { host: "h1", incarnation: dead.lease }));
    }
    const ctx = await b.context(helper, "host.failed", {
      host: "h1",
      incarnation: dead.lease,
    });
    const read = vmReads(b.store);
    const out = await hostFailed(ctx);
    assert.deepEqual((out.result as { evacuated: string[] }).evacuated, mine);
    assert.deepEqual([...read].sort(), mine);
    for (const id of mine) {
      const vm = (await b.store.get(keys.vm(id), Vm))!.value;
      assert.equal(vm.status.phase, "pending");
      assert.equal(vm.status.host, undefined);
    }
  });
});

Deno.test("hostDrain() reads only the draining host's VMs, not 1000 of another host", async () => {
  await withBench(async (b) => {
    const w = await b.incarnation("h2");
    await b.store.txn().put(
      keys.host("h1"),
      {
        ...hostDoc("h1", 4, 4096),
        state: "draining",
      } satisfies Host,
    ).commit();
    await crowd(b.store);
    for (const id of ["vm-a", "vm-b"]) {
      await b.putVm(vmDoc(id, { host: "h1", phase: "stopped" }));
    }
    const ctx = await b.context(w, "host.drain", { host: "h1" });
    const read = vmReads(b.store);
    const out = await hostDrain(ctx);
    const moves = (out.result as { moves: { vm: string }[] }).moves;
    assert.deepEqual(moves.map((m) => m.vm), ["vm-a", "vm-b"]);
    assert.deepEqual([...read].sort(), ["vm-a", "vm-b"]);
  });
});
