/**
 * The scheduler against a real etcd under concurrency: several OS
 * processes (each with its own store, cache and API app) racing for small
 * hosts never overcommit one, and two `vm.create` handlers racing for the
 * last slot: one wins.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { PlacementCache } from "../scheduler/cache.ts";
import { Alloc, Task, Vm } from "../core/schemas.ts";
import { claim, complete } from "../tasks/queue.ts";
import { FIRST_WAIT_MS, vmCreate } from "../tasks/vm_create.ts";
import { ROOT, waitFor } from "./helpers/cluster.ts";
import {
  checkInvariants,
  ctxFor,
  grant,
  hostDoc,
  placed,
  placementTest,
  post,
  register,
  revoke,
} from "./helpers/placement.ts";

/** Runs in a child process: its own store, cache and API app. */
const CHILD = `
import { createApp } from "${ROOT}api/app.ts";
import { parseConfig } from "${ROOT}core/config.ts";
import { PlacementCache } from "${ROOT}scheduler/cache.ts";
import { Store } from "${ROOT}core/store.ts";
const env = (n) => Deno.env.get(n);
const config = parseConfig({}, (n) => n === "UCLOUD_SCHEDULER_POLICY" || n === "UCLOUD_MAX_PENDING_VMS" ? env(n) : undefined);
const store = Store.connect({ endpoints: [env("ETCD")], prefix: env("PREFIX") });
const cache = PlacementCache.start(store);
await cache.ready;
const app = createApp({ store, config });
const proc = Number(env("PROC"));
const n = Number(env("N"));
const concurrency = Number(env("C"));
while (!(await store.get("go", { safeParse: (v) => ({ success: true, data: v }) }))) {
  await new Promise((r) => setTimeout(r, 5));
}
const out = [];
let next = 0;
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < n) {
    const i = next++;
    const big = (i + proc) % 3 === 0;
    const res = await app.request("/v1/vms", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "p" + proc + "-" + i, cpus: big ? 2 : 1, memory: big ? 1024 : 512 }),
    });
    const body = await res.json();
    out.push({ status: res.status, id: body.vm?.id, phase: body.vm?.status.phase, host: body.vm?.status.host, reason: body.vm?.status.reason, error: body.error });
  }
}));
console.log(JSON.stringify(out));
await cache.close();
store.close();
Deno.exit(0);
`;

function child(env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", CHILD],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

placementTest(
  "scheduler: placement against a real etcd",
  async ({ step, connect, cacheFor, config, etcd, nextPrefix }) => {
    await step(
      "4 processes creating 160 VMs at once never overcommit a host",
      async () => {
        const prefix = nextPrefix();
        const store = connect(prefix);
        const lease = await grant(store);
        const hosts = [
          { name: "h1", cpus: 3, memoryMiB: 4096 },
          { name: "h2", cpus: 4, memoryMiB: 2048 },
          { name: "h3", cpus: 5, memoryMiB: 4096 },
          { name: "h4", cpus: 6, memoryMiB: 3072 },
          { name: "h5", cpus: 8, memoryMiB: 8192 },
        ];
        await register(store, lease, hosts);
        const procs = 4, each = 40;
        const children = Array.from({ length: procs }, (_, p) =>
          child({
            ETCD: etcd.endpoint,
            PREFIX: prefix,
            PROC: String(p),
            N: String(each),
            C: "8",
            UCLOUD_SCHEDULER_POLICY: p % 2 ? "pack" : "spread",
            // One user's 160 VMs, most of them left pending: no bound.
            UCLOUD_MAX_PENDING_VMS: "0",
            UCLOUD_LOG_LEVEL: "error",
          }));
        try {
          // Let every child list the hosts and wait for the start signal.
          await new Promise((r) => setTimeout(r, 1500));
          await store.txn().put("go", 1).commit();
          const outs = await Promise.all(children.map((c) => c.output()));
          const results: {
            status: number;
            id: string;
            phase: string;
            host?: string;
            reason?: string;
          }[] = [];
          for (const o of outs) {
            assert.ok(o.success, new TextDecoder().decode(o.stderr));
            results.push(...JSON.parse(new TextDecoder().decode(o.stdout)));
          }
          assert.equal(results.length, procs * each);
          assert.deepEqual(
            results.filter((r) => r.status !== 201),
            [],
          );
          const inv = await checkInvariants(store);
          assert.equal(inv.vms, procs * each);
          assert.equal(new Set(results.map((r) => r.id)).size, inv.vms);
          // What the API answered is what etcd holds.
          for (const r of results) {
            const vm = (await store.get(keys.vm(r.id), Vm))!.value;
            assert.equal(vm.status.phase, r.phase);
            assert.equal(vm.status.host, r.host);
          }
          const capacity = hosts.reduce((s, h) => s + h.cpus, 0);
          assert.ok(inv.placed > 0 && inv.pending > 0);
          // Placement is not only safe but useful: most cores get used.
          assert.ok(
            inv.cpus >= capacity * 0.6,
            `only ${inv.cpus} of ${capacity} cores placed`,
          );
          assert.ok(
            results.some((r) => /^no live host has/.test(r.reason ?? "")),
          );
        } finally {
          for (const c of children) {
            try {
              c.kill("SIGKILL");
            } catch { /* exited */ }
          }
          await revoke(store, lease);
        }
      },
    );

    for (const withCache of [false, true]) {
      await step(
        `two vm.create handlers race for the last slot: one wins (${
          withCache ? "placement cache" : "listings"
        })`,
        async () => {
          const store = connect();
          const lease = await grant(store);
          await register(store, lease, [{
            name: "h1",
            cpus: 1,
            memoryMiB: 1024,
          }]);
          // No cache yet: the API leaves both VMs pending for workers.
          const app = createApp({ store });
          const a = await post(app, { name: "a", cpus: 1, memory: 128 });
          const b = await post(app, { name: "b", cpus: 1, memory: 128 });
          assert.equal(a.body.vm.status.phase, "pending");
          assert.equal(b.body.vm.status.phase, "pending");
          if (withCache) await cacheFor(store);
          const w1 = { name: "w1", lease: await grant(store) };
          const w2 = { name: "w2", lease: await grant(store) };
          const c1 = await claim(store, a.body.task.id, w1);
          const c2 = await claim(store, b.body.task.id, w2);
          assert.ok(c1 && c2);
          const ctx1 = ctxFor(store, config, c1.value, w1);
          const ctx2 = ctxFor(store, config, c2.value, w2);
          const [o1, o2] = await Promise.all([
            vmCreate(ctx1),
            vmCreate(ctx2),
          ]);
          assert.deepEqual([placed(o1.result), placed(o2.result)], [
            { host: "h1" },
            { host: "h1" },
          ]);
          const oks = await Promise.all([
            complete(store, c1.value, w1, o1.result, o1.txn),
            complete(store, c2.value, w2, o2.result, o2.txn),
          ]);
          assert.equal(oks.filter(Boolean).length, 1, `${oks}`);
          const alloc = await store.get(keys.alloc("h1"), Alloc);
          assert.equal(alloc!.value.count, 1);
          assert.equal(await store.count(keys.allocVmsOf("h1")), 1);

          // The loser runs again (as the worker does): no room now.
          const [loser, lw, lctx] = oks[0] ? [c2, w2, ctx2] : [c1, w1, ctx1];
          const before = Date.now();
          const again = await vmCreate(lctx);
          const res = again.result as { pending: string; next: string };
          assert.match(res.pending, /^no live host has 1 free CPU\(s\)/);
          assert.ok(await complete(store, loser.value, lw, res, again.txn));
          const lvm =
            (await store.get(keys.vm(loser.value.payload.vm as string), Vm))!
              .value;
          assert.equal(lvm.status.phase, "pending");
          assert.equal(lvm.status.reason, res.pending);
          // Waiting consumes no attempt: a fresh task, due after the
          // first back-off.
          const next = (await store.get(keys.task(res.next), Task))!.value;
          assert.equal(next.attempts, 0);
          assert.equal(next.kind, "vm.create");
          assert.ok(next.notBefore > before);
          assert.ok(next.notBefore <= Date.now() + FIRST_WAIT_MS);
          assert.ok(await store.get(keys.queue("any", next.id), z.unknown()));
          await checkInvariants(store);

          // Capacity appears: the next try places it.
          await store.txn().put(keys.host("h1"), hostDoc("h1", 2, 1024))
            .commit();
          if (withCache) {
            const cache = PlacementCache.for(store)!;
            await waitFor(
              "cache to see 2 cpus",
              () => cache.candidate("h1")?.host.capacity.cpus === 2,
              5000,
              10,
            );
          }
          const c3 = await claim(
            store,
            next.id,
            lw,
            new Date(next.notBefore + 1),
          );
          assert.ok(c3);
          const o3 = await vmCreate(ctxFor(store, config, c3.value, lw));
          assert.deepEqual(placed(o3.result), { host: "h1" });
          assert.ok(await complete(store, c3.value, lw, o3.result, o3.txn));
          const inv = await checkInvariants(store);
          assert.deepEqual(inv, { placed: 2, pending: 0, cpus: 2, vms: 2 });
          for (const l of [lease, w1.lease, w2.lease]) await revoke(store, l);
        },
      );
    }
  },
);
