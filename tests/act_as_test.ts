/**
 * Admins act for a user with `X-Act-As`: the request runs with the user's
 * rights and what it creates is the user's. Users cannot act for others.
 */
import assert from "node:assert/strict";
import type { MiddlewareHandler } from "hono";
import { createApp } from "../api/app.ts";
import type { AppEnv } from "../api/env.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { Store } from "../core/store.ts";
import { dump } from "./helpers/cluster.ts";

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
    const app = createApp({ store, auth });
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
    const vm = (await made.json()).vm;
    assert.equal(vm.owner, "bob");
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
