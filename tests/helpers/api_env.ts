/**
 * The environment of the in-process API tests: one real etcd, a new key
 * prefix per `connect()`, `fresh()` apps on their own store, `step()` with
 * sanitizers off, `create()` a VM and expect 201. `withApiEnv()` runs a
 * test body in it and stops etcd and removes its data afterwards.
 */
import assert from "node:assert/strict";
import { createApp } from "../../api/app.ts";
import { type EtcdServer, startEtcd } from "../../core/etcd_server.ts";
import type { Task, Vm } from "../../core/schemas.ts";
import { Store } from "../../core/store.ts";
import { type App, call, noSanitize } from "./api.ts";
import { input } from "./api_fixtures.ts";

/** What a test body gets from `withApiEnv()`. */
export interface ApiEnv {
  etcd: EtcdServer;
  /** Every store opened; all are closed at the end. */
  stores: Store[];
  /** A store on a new key prefix. */
  connect: () => Store;
  /** A store on a new key prefix and an app on it. */
  fresh: (
    opts?: Partial<Parameters<typeof createApp>[0]>,
  ) => { store: Store; app: App };
  /** A sub-step with sanitizers off. */
  step: (
    name: string,
    fn: (t: Deno.TestContext) => Promise<void>,
  ) => Promise<boolean>;
  /** POSTs a VM and asserts 201. */
  create: (
    app: App,
    body?: unknown,
    init?: object,
  ) => Promise<{ vm: Vm; task: Task }>;
}

/** Runs `body` against a fresh etcd and cleans up after it. */
export async function withApiEnv(
  t: Deno.TestContext,
  body: (env: ApiEnv) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-api-test-" });
  const etcd = await startEtcd({ dataDir: dir });
  const stores: Store[] = [];
  let n = 0;
  const connect = () => {
    const store = Store.connect({
      endpoints: [etcd.endpoint],
      prefix: `/t/${++n}`,
    });
    stores.push(store);
    return store;
  };
  const fresh = (opts: Partial<Parameters<typeof createApp>[0]> = {}) => {
    const store = connect();
    return { store, app: createApp({ store, ...opts }) };
  };
  const step = (name: string, fn: (t: Deno.TestContext) => Promise<void>) =>
    t.step({ name, ...noSanitize, fn });
  const create = async (app: App, body: unknown = input, init = {}) => {
    const r = await call(app, "POST", "/v1/vms", { json: body, ...init });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body as { vm: Vm; task: Task };
  };
  try {
    await body({ etcd, stores, connect, fresh, step, create });
  } finally {
    for (const s of stores) s.close();
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
