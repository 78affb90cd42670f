/**
 * What one `/v1/events` stream costs (api/events.ts), on a real etcd: a
 * user's snapshot reads only their owner index keys and VM documents
 * beside 1000 other users' VMs (keys counted on the store's client), at
 * one revision (a VM changed between the index read and the document read
 * is shown as it was at that revision), and `?all=1` still reads every VM;
 * the caps of config `api.events` on open streams answer 429.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { EventHub } from "../api/event_hub.ts";
import { ConfigSchema } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import type { Vm } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { headerAuth, noSanitize } from "./helpers/api.ts";
import { countReads, putAll, vmId } from "./helpers/pages.ts";
import { waitFor } from "./helpers/cluster.ts";
import { EventLog } from "./helpers/sse.ts";
import { vmDoc } from "./helpers/task_ctx.ts";

const OTHERS = 1000;

/** An app with its own etcd and hub (`limits`: config api.events). */
async function withEventsApp(
  f: (a: { app: ReturnType<typeof createApp>; store: Store }) => Promise<
    void
  >,
  limits: { maxStreamsPerUser?: number; maxStreams?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "uc-evs-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/evs" });
  const hub = new EventHub(store);
  const app = createApp({
    store,
    auth: headerAuth,
    config: {
      tasks: ConfigSchema.shape.tasks.parse(undefined),
      api: ConfigSchema.shape.api.parse({ events: limits }),
    },
    events: { hub, heartbeatMs: 300 },
  });
  try {
    await f({ app, store });
  } finally {
    await hub.close();
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

/** The snapshot of `user`'s stream: its VM events and `synced`'s revision. */
async function snapshotOf(
  app: ReturnType<typeof createApp>,
  user: string,
  path = "/v1/events",
): Promise<{ vms: { id: string; rev: bigint }[]; revision: bigint }> {
  const res = await app.request(path, { headers: { "x-user": user } });
  assert.equal(res.status, 200);
  const log = new EventLog(res);
  const synced = await log.waitEvent("synced");
  await log.cancel();
  const vms = log.events.slice(0, log.events.indexOf(synced))
    .filter((e) => e.event === "vm")
    .map((e) => ({ id: (e.data as Vm).id, rev: BigInt(e.id!) }));
  return { vms, revision: BigInt(synced.data.revision) };
}

Deno.test({
  name:
    "a user's /v1/events snapshot reads only their owner index keys and VMs beside 1000 other users' VMs, at one revision",
  ...noSanitize,
  fn: () =>
    withEventsApp(async ({ app, store }) => {
      const docs: [string, unknown][] = [];
      const mine: string[] = [];
      for (let n = 0; n < OTHERS + 5; n++) {
        const owner = n % 200 === 7 ? "carol" : `user${n}`;
        const vm = { ...vmDoc(vmId(n), {}), owner };
        if (owner === "carol") mine.push(vm.id);
        docs.push([keys.vm(vm.id), vm], [keys.vmOwner(owner, vm.id), {}]);
      }
      await putAll(store, docs);
      const seen = countReads(store);
      const keysRead = async (f: () => Promise<unknown>) => {
        const before = seen.keys;
        await f();
        return seen.keys - before;
      };

      // Before the backfill's mark, the snapshot scans `vm/` (view.ts).
      let snap = await snapshotOf(app, "carol");
      assert.deepEqual(snap.vms.map((v) => v.id), mine);

      await putAll(store, [[keys.vmOwnersBackfilled, {
        by: "test",
        at: new Date().toISOString(),
        vms: OTHERS + 5,
      }]]);
      const n = await keysRead(async () => {
        snap = await snapshotOf(app, "carol");
      });
      assert.deepEqual(snap.vms.map((v) => v.id), mine);
      assert.ok(n <= 2 * mine.length + 2, `${n} keys read`);

      // A VM of carol's changed between the index read and the document
      // read is shown as it was at the snapshot's revision.
      const kv = store.client.kv;
      const txn = kv.txn.bind(kv);
      let changed = false;
      kv.txn = async (...args: Parameters<typeof txn>) => {
        const reads = args[0].success?.some((op) => "request_range" in op);
        if (reads && !changed) {
          changed = true;
          const vm = { ...vmDoc(mine[0], {}), owner: "carol" };
          await putAll(store, [[keys.vm(mine[0]), vm]]);
        }
        return await txn(...args);
      };
      snap = await snapshotOf(app, "carol");
      kv.txn = txn;
      assert.ok(changed, "the documents were read by key");
      assert.deepEqual(snap.vms.map((v) => v.id), mine);
      for (const v of snap.vms) {
        assert.ok(v.rev <= snap.revision, `${v.id} at ${v.rev}`);
      }

      const all = await snapshotOf(app, "root/admin", "/v1/events?all=1");
      assert.equal(all.vms.length, OTHERS + 5);
    }),
});

Deno.test({
  name:
    "/v1/events answers 429 with Retry-After beyond the per-user and per-process caps of open streams, and a closed stream frees its place",
  ...noSanitize,
  fn: () =>
    withEventsApp(async ({ app }) => {
      const open = async (user: string) => {
        const res = await app.request("/v1/events", {
          headers: { "x-user": user },
        });
        if (res.status !== 200) {
          return { status: res.status, res, body: await res.json() };
        }
        const log = new EventLog(res);
        await log.waitEvent("synced");
        return { status: 200, res, log };
      };
      const bob = [await open("bob"), await open("bob")];
      assert.deepEqual(bob.map((s) => s.status), [200, 200]);
      const third = await open("bob");
      assert.equal(third.status, 429);
      assert.ok(Number(third.res.headers.get("retry-after")) > 0);
      assert.match(third.body.error.message, /at most 2 .*event streams/);

      const carol = await open("carol");
      assert.equal(carol.status, 200);
      const dave = await open("dave");
      assert.equal(dave.status, 429, "the process holds 3 at most");
      assert.ok(Number(dave.res.headers.get("retry-after")) > 0);
      assert.match(dave.body.error.message, /server .*3 event streams/);

      await bob[0].log!.cancel();
      const again = await waitFor("bob's stream freed its place", async () => {
        const s = await open("bob");
        if (s.status === 200) return s;
      });
      for (const s of [bob[1], carol, again]) await s.log!.cancel();
    }, { maxStreamsPerUser: 2, maxStreams: 3 }),
});
