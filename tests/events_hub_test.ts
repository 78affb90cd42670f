/**
 * The shared watches behind `GET /v1/events` (api/event_hub.ts), on a real
 * etcd and a real HTTP server: 50 streams hold one etcd watch per prefix
 * (counted by etcd itself, `etcd_debugging_mvcc_watcher_total`), clients
 * that go away leave no watcher, and a client that does not read is
 * dropped with `event: reset` instead of growing the server's memory.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { EventHub } from "../api/event_hub.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { Store } from "../core/store.ts";
import { call, headerAuth, noSanitize } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";
import { EventLog } from "./helpers/sse.ts";

/** What etcd says about its watchers. */
async function etcdWatchers(endpoint: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const m = /^etcd_debugging_mvcc_watcher_total (\S+)$/m.exec(text);
  assert.ok(m, "etcd reports etcd_debugging_mvcc_watcher_total");
  return Number(m[1]);
}

async function withApp(
  f: (a: {
    app: ReturnType<typeof createApp>;
    hub: EventHub;
    store: Store;
    endpoint: string;
  }) => Promise<void>,
  maxBufferBytes?: number,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "uc-ev-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/ev" });
  const hub = new EventHub(store);
  const app = createApp({
    store,
    auth: headerAuth,
    events: { hub, heartbeatMs: 300, maxBufferBytes, maxStreamsPerUser: 50 },
  });
  try {
    await f({ app, hub, store, endpoint: etcd.endpoint });
  } finally {
    await hub.close();
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

const createVm = (app: ReturnType<typeof createApp>, name: string) =>
  call(app, "POST", "/v1/vms", {
    headers: { "x-user": "bob" },
    json: { name, cpus: 1, memory: 128 },
  });

Deno.test({
  name:
    "50 /v1/events streams share one etcd watch per prefix, and when their clients go away no watcher is left",
  ...noSanitize,
  fn: () =>
    withApp(async ({ app, hub, endpoint }) => {
      const server = Deno.serve({ port: 0, onListen: () => {} }, app.fetch);
      const base = `http://127.0.0.1:${server.addr.port}`;
      const before = await etcdWatchers(endpoint);
      const clients: { ctl: AbortController; log: EventLog }[] = [];
      try {
        for (let i = 0; i < 50; i++) {
          const ctl = new AbortController();
          const res = await fetch(`${base}/v1/events`, {
            headers: { "x-user": "bob" },
            signal: ctl.signal,
          });
          assert.equal(res.status, 200);
          clients.push({ ctl, log: new EventLog(res) });
        }
        for (const { log } of clients) await log.waitEvent("synced");
        assert.equal(hub.watching, 2, "one watch for vm/, one for task/");
        assert.equal(hub.subscribers(keys.vms), 50);
        assert.equal(await etcdWatchers(endpoint), before + 2);
        const r = await createVm(app, "w1");
        assert.equal(r.status, 201);
        for (const { log } of clients) {
          await log.waitEvent("vm", (v) => v.id === r.body.vm.id);
          await log.waitEvent("task", (t) => t.payload.vm === r.body.vm.id);
        }
        // Heartbeats come as comments.
        await clients[0].log.waitEvent("comment");

        for (const { ctl } of clients.slice(1)) ctl.abort();
        await waitFor("49 gone", () => hub.subscribers(keys.vms) === 1);
        assert.equal(hub.watching, 2);
        clients[0].ctl.abort();
        await waitFor("the watches stopped", () => hub.watching === 0);
        await waitFor(
          "etcd's watchers back to where they were",
          async () => (await etcdWatchers(endpoint)) === before,
        );
        assert.equal(hub.subscribers(keys.tasks), 0);
      } finally {
        for (const { ctl } of clients) ctl.abort();
        await server.shutdown();
      }
    }),
});

Deno.test({
  name:
    "a /v1/events client that does not read is dropped with event: reset and leaves the hub",
  ...noSanitize,
  fn: () =>
    withApp(async ({ app, hub }) => {
      const res = await app.request("/v1/events", {
        headers: { "x-user": "bob" },
      });
      assert.equal(res.status, 200);
      await waitFor("subscribed", () => hub.subscribers(keys.vms) === 1);
      // Nobody reads: each VM's event waits in the stream's buffer (4 KiB).
      for (let i = 0; hub.subscribers(keys.vms) > 0; i++) {
        assert.ok(i < 100, "dropped before 100 VMs");
        assert.equal((await createVm(app, `s${i}`)).status, 201);
      }
      const log = new EventLog(res);
      await log.ended;
      assert.deepEqual(log.events.map((e) => e.event), ["reset"]);
      assert.match(log.events[0].data.reason, /buffer full|too slow/);
      await waitFor("the watches stopped", () => hub.watching === 0);
    }, 4096),
});
