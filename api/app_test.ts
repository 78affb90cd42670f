/**
 * Tests of createApp() (api/app.ts) without identity: the API takes every
 * caller for the local admin.
 */
import assert from "node:assert/strict";
import { Store } from "../core/store.ts";
import { createApp } from "./app.ts";

Deno.test("GET /v1/auth/whoami without identity names the local admin", async () => {
  // whoami reads no document: an etcd that is not there is fine.
  const store = Store.connect({
    endpoints: ["http://127.0.0.1:1"],
    prefix: "/x",
  });
  try {
    const res = await createApp({ store }).request("/v1/auth/whoami");
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { name: "local", admin: true });
  } finally {
    store.close();
  }
});
