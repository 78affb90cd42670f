/**
 * Admins act for a user with `X-Act-As`: the request runs with the user's
 * rights and what it creates is the user's; the tasks it makes and the log
 * name both people. Users cannot act for others.
 */
import assert from "node:assert/strict";
import type { MiddlewareHandler } from "hono";
import { createApp } from "../api/app.ts";
import type { AppEnv } from "../api/env.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { Task } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { dump } from "./helpers/cluster.ts";
import { captureLog } from "./helpers/otp.ts";

/** Test auth: the principal is named by the `x-test-user` header. */
const auth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const name = c.req.header("x-test-user") ?? "alice";
  c.set("principal", { name, admin: name === "root" });
  await next();
};

Deno.test("X-Act-As: admins act for a user with the user's rights; users may not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uc-act-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/act" });
  try {
    const log = captureLog();
    const app = createApp({ store, auth, log });
    const req = (
      user: string,
      path: string,
      init: RequestInit = {},
      as?: string,
    ) =>
      app.request(path, {
        ...init,
        headers: {
          "content-type": "application/json",
          "x-test-user": user,
          ...(as ? { "x-act-as": as } : {}),
        },
      });
    const body = JSON.stringify({ name: "web", cpus: 1, memory: 128 });

    const made = await req("root", "/v1/vms", { method: "POST", body }, "bob");
    assert.equal(made.status, 201);
    const madeBody = await made.json();
    const vm = madeBody.vm;
    assert.equal(vm.owner, "bob");
    // The task history names both: bob's rights, root's request.
    const taskId = madeBody.task.id;
    const stored = await store.get(keys.task(taskId), Task);
    assert.deepEqual(stored?.value.history[0].by, {
      user: "bob",
      actor: "root",
    });
    const lines = log.lines.map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.filter((l) => l.msg === "request for another user").map((l) => ({
        user: l.user,
        actor: l.actor,
        method: l.method,
        path: l.path,
        status: l.status,
      })),
      [{
        user: "bob",
        actor: "root",
        method: "POST",
        path: "/v1/vms",
        status: 201,
      }],
    );
    // bob's own request names bob alone.
    const own = await (await req("bob", "/v1/vms", {
      method: "POST",
      body: JSON.stringify({ name: "own", cpus: 1, memory: 128 }),
    })).json();
    assert.deepEqual(own.task.history[0].by, { user: "bob" });
    // A change made for bob (here a delete) is recorded the same way.
    const del = await req("root", `/v1/vms/${own.vm.id}`, {
      method: "DELETE",
    }, "bob");
    assert.equal(del.status, 202);
    const delTask = (await del.json()).task;
    assert.equal(delTask.kind, "vm.delete");
    assert.deepEqual(
      (await store.get(keys.task(delTask.id), Task))?.value.history[0].by,
      { user: "bob", actor: "root" },
    );
    // bob sees it; alice does not.
    assert.equal((await req("bob", `/v1/vms/${vm.id}`)).status, 200);
    assert.equal((await req("alice", `/v1/vms/${vm.id}`)).status, 404);
    // Acting as bob, the admin has bob's rights: no admin-only endpoints.
    assert.equal((await req("root", "/v1/hosts", {}, "bob")).status, 403);
    assert.equal((await req("root", "/v1/hosts")).status, 200);

    const before = await dump(store);
    const denied = await req(
      "alice",
      "/v1/vms",
      { method: "POST", body },
      "bob",
    );
    assert.equal(denied.status, 403);
    assert.equal((await denied.json()).error.field, "X-Act-As");
    const bad = await req(
      "root",
      "/v1/vms",
      { method: "POST", body },
      "no/such",
    );
    assert.equal(bad.status, 400);
    assert.deepEqual(await dump(store), before, "rejections write nothing");
  } finally {
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
