/**
 * What a rebalance round reads (tasks/rebalance_round.ts): hosts, liveness
 * and reservations, and VM documents only of the hosts its plan looks at
 * (scheduler/placed_on.ts). A cron tick over a balanced cluster reads no
 * VM however many there are; an unbalanced one reads only its sources'
 * VMs and plans what a plan over all VMs plans. Real etcd; reads counted
 * on the store's etcd client.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../core/config.ts";
import { idOf, keys } from "../core/keys.ts";
import { Alive, Alloc, Host, Vm } from "../core/schemas.ts";
import type { Store } from "../core/store.ts";
import { planRound } from "../scheduler/mod.ts";
import { unfinished } from "../tasks/queue.ts";
import { planOnce, rebalanceOnce } from "../tasks/rebalance_round.ts";
import { withEtcd } from "./helpers/etcd_env.ts";
import { grant, register } from "./helpers/placement.ts";
import { reserveOn, vmDoc } from "./helpers/task_ctx.ts";

const config = parseConfig({}, () => undefined);

/** Counts the `vm/` keys etcd returns to `store` (ranges and txn reads). */
function countVmReads(store: Store) {
  const kv = store.client.kv;
  const range = kv.range.bind(kv);
  const txn = kv.txn.bind(kv);
  const seen = { keys: 0, ids: new Set<string>() };
  const note = (kvs: { key: { toString(): string } }[]) => {
    for (const k of kvs) {
      const rel = store.rel(k.key.toString());
      if (!rel.startsWith(keys.vms)) continue;
      seen.keys++;
      seen.ids.add(idOf(rel));
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
  return seen;
}

/** Puts `n` stopped VMs on `host` with their reservations. */
async function placeVms(store: Store, host: string, n: number) {
  const ids = Array.from({ length: n }, (_, i) => `vm-${host}-${i}`);
  for (let i = 0; i < n; i += 100) {
    const txn = store.txn();
    for (const id of ids.slice(i, i + 100)) {
      txn.put(keys.vm(id), {
        ...vmDoc(id, { phase: "stopped", host }),
        desired: "stopped",
      });
    }
    await txn.commit();
  }
  for (const id of ids) await reserveOn(store, host, id);
}

const HOST = { cpus: 256, memoryMiB: 256 * 128 };

Deno.test("a rebalance round over 600 idle VMs on balanced hosts reads no VM document", async () => {
  await withEtcd(async (store) => {
    const lease = await grant(store);
    const hosts = ["h1", "h2", "h3"].map((name) => ({ name, ...HOST }));
    await register(store, lease, hosts);
    await Promise.all(hosts.map((h) => placeVms(store, h.name, 200)));
    const seen = countVmReads(store);
    const r = await rebalanceOnce(store, config, { by: "test", round: "r1" });
    assert.ok(r.ran);
    assert.match(r.reason, /^balanced/);
    assert.deepEqual(r.moves, []);
    assert.equal(seen.keys, 0, `${seen.keys} vm/ keys read`);
  });
});

Deno.test("an unbalanced round reads only its source hosts' VMs and plans the moves a plan over all VMs plans", async () => {
  await withEtcd(async (store) => {
    const lease = await grant(store);
    const names = ["h1", "h2", "h3", "h4", "h5", "h6"];
    await register(
      store,
      lease,
      [...names, "h7"].map((name) => ({
        name,
        ...HOST,
      })),
    );
    await Promise.all(names.map((h) => placeVms(store, h, 100)));
    const seen = countVmReads(store);
    const view = await planOnce(store, config, { by: "test" });
    const read = seen.ids.size;
    assert.equal(view.moves.length, 2, view.reason);
    const sources = new Set(view.moves.map((m) => m.from));
    assert.ok(read <= 100 * sources.size, `${read} VMs read`);
    assert.ok(read < 600, `${read} VMs read`);

    const all = await store.list(keys.vms, Vm);
    const [hs, alive, allocs] = await Promise.all([
      store.list(keys.hosts, Host),
      store.list(keys.alives, Alive),
      store.list(keys.allocs, Alloc),
    ]);
    const full = planRound({
      hosts: hs.items.map((h) => h.value),
      alive: new Set(alive.items.map((a) => idOf(a.key))),
      allocs: new Map(allocs.items.map((a) => [idOf(a.key), a.value])),
      vms: all.items.map((v) => v.value),
      running: await unfinished(store),
    }, config.scheduler);
    assert.deepEqual(view.moves, full.moves);
    assert.equal(view.reason, full.reason);
    console.log(
      `moves ${view.moves.map((m) => `${m.vm}:${m.from}->${m.to}`)}; ` +
        `${read} of 600 VMs read`,
    );
  });
});
