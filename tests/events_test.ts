/**
 * `GET /v1/events` against a real etcd: what a user, an admin and an admin
 * with `?all=1` see while a worker (sim driver) runs VMs; that a deleted
 * VM gives `vm-deleted`; the snapshot of a new stream. The token and
 * sharing tests are in events_auth_test.ts and events_hub_test.ts.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Alive, type Vm } from "../core/schemas.ts";
import { call, headerAuth, noSanitize } from "./helpers/api.ts";
import { waitFor, withCluster } from "./helpers/cluster.ts";
import { EventLog } from "./helpers/sse.ts";

type App = ReturnType<typeof createApp>;

async function open(app: App, user: string, query = ""): Promise<EventLog> {
  const res = await app.request(`/v1/events${query}`, {
    headers: { "x-user": user },
  });
  if (res.status !== 200) assert.fail(`${res.status} ${await res.text()}`);
  assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
  const log = new EventLog(res);
  await log.waitEvent("synced");
  return log;
}

async function create(app: App, user: string, name: string): Promise<string> {
  const r = await call(app, "POST", "/v1/vms", {
    headers: { "x-user": user },
    json: { name, cpus: 1, memory: 128 },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.vm.id;
}

Deno.test({
  name:
    "GET /v1/events shows a user their VM turning running and nothing of another user's; an admin sees everyone's only with ?all=1; a delete gives vm-deleted",
  ...noSanitize,
  fn: () =>
    withCluster(async (c) => {
      await c.addWorker({ name: "h1", cpus: 8, env: { UCLOUD_DRIVER: "sim" } });
      await waitFor("h1 alive", () => c.store.get(keys.alive("h1"), Alive));
      const app = createApp({ store: c.store, auth: headerAuth });
      const bob = await open(app, "bob");
      const admin = await open(app, "root/admin");
      const all = await open(app, "root/admin", "?all=1");
      const logs = [bob, admin, all];
      try {
        assert.equal(bob.named("vm").length, 0);
        const bobVm = await create(app, "bob", "b1");
        const carolVm = await create(app, "carol", "c1");
        const running = (id: string) => (v: Vm) =>
          v.id === id && v.status.phase === "running";
        await bob.waitEvent("vm", running(bobVm));
        await all.waitEvent("vm", running(bobVm));
        await all.waitEvent("vm", running(carolVm));
        // bob's last word on his VM is what GET /v1/vms/{id} answers him.
        await waitFor("bob's last vm event equals GET", async () => {
          const last = bob.named("vm").filter((e) => e.data.id === bobVm)
            .at(-1)!.data;
          const got = await call(app, "GET", `/v1/vms/${bobVm}`, {
            headers: { "x-user": "bob" },
          });
          return JSON.stringify(got.body) === JSON.stringify(last);
        });
        const bobLast = bob.named("vm").at(-1)!.data;
        assert.equal(bobLast.status.handle, undefined, "host internals hidden");
        assert.ok(
          all.named("vm").some((e) => e.data.status.handle !== undefined),
          "an admin sees the handle",
        );
        // bob's tasks, with their progress, and nobody else's.
        await bob.waitEvent(
          "task",
          (t) => t.payload.vm === bobVm && t.state === "succeeded",
        );
        for (const e of [...bob.named("vm"), ...bob.named("task")]) {
          assert.equal(e.data.owner, "bob", JSON.stringify(e.data));
        }
        for (const e of [...admin.named("vm"), ...admin.named("task")]) {
          assert.equal(e.data.owner, "root", JSON.stringify(e.data));
        }
        assert.ok(all.named("task").some((e) => e.data.owner === "carol"));
        // Every event's id is an etcd revision, rising.
        const ids = bob.events.filter((e) => e.id).map((e) => BigInt(e.id!));
        assert.deepEqual(ids, ids.toSorted((a, b) => a < b ? -1 : 1));

        // A new stream starts with the VMs as they are.
        const late = await open(app, "bob");
        logs.push(late);
        const before = late.events.findIndex((e) => e.event === "synced");
        assert.deepEqual(
          late.events.slice(0, before).map((e) => [e.event, e.data.id]),
          [["vm", bobVm]],
        );
        assert.equal(late.events[before - 1].data.status.phase, "running");

        const del = await call(app, "DELETE", `/v1/vms/${bobVm}`, {
          headers: { "x-user": "bob" },
        });
        assert.equal(del.status, 202, JSON.stringify(del.body));
        for (const log of [bob, all, late]) {
          const ev = await log.waitEvent("vm-deleted");
          assert.deepEqual(ev.data, { id: bobVm });
        }
        assert.deepEqual(admin.named("vm-deleted"), []);
        assert.ok(!bob.named("vm-deleted").some((e) => e.data.id === carolVm));
      } finally {
        for (const log of logs) await log.cancel();
      }
    }, { guest: false }),
});
