/**
 * The environment of the `/v1/networks` API tests (tests/network_api_test.ts,
 * tests/network_nics_api_test.ts): a real etcd (tests/helpers/api_env.ts),
 * `fresh()` apps with `headerAuth` on their own key prefix, the callers
 * ALICE, BOB and ADMIN, `mkNet()` and `mkVm()` that expect 201, and
 * `place()` that plays the worker running a VM on a host.
 */
import assert from "node:assert/strict";
import { keys } from "../../core/keys.ts";
import { type Network, type Task, Vm } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { type App, call, headerAuth } from "./api.ts";
import { withApiEnv } from "./api_env.ts";

export const ALICE = { "x-user": "alice" };
export const BOB = { "x-user": "bob" };
export const ADMIN = { "x-user": "root/admin" };

/** What a test body gets from `withNetApiEnv()`. */
export interface NetApiEnv {
  /** A store on a new key prefix and an app on it with `headerAuth`. */
  fresh: () => { store: Store; app: App };
  /** A sub-step with sanitizers off. */
  step: (name: string, fn: () => Promise<void>) => Promise<boolean>;
  /** POSTs a network (as ALICE unless told) and asserts 201. */
  mkNet: (
    app: App,
    body: Record<string, unknown>,
    headers?: Record<string, string>,
  ) => Promise<Network>;
  /** POSTs a VM named web with NICs in `networks` and asserts 201. */
  mkVm: (
    app: App,
    networks: string[],
    headers?: Record<string, string>,
  ) => Promise<{ vm: Vm; task: Task }>;
  /** Plays the worker: the VM runs on `host`. */
  place: (store: Store, id: string, host: string) => Promise<void>;
}

/** Runs `body` against a fresh etcd and cleans up after it. */
export async function withNetApiEnv(
  t: Deno.TestContext,
  body: (env: NetApiEnv) => Promise<void>,
): Promise<void> {
  await withApiEnv(t, async (env) => {
    const fresh = () => env.fresh({ auth: headerAuth });
    const step = (name: string, fn: () => Promise<void>) => env.step(name, fn);
    const mkNet = async (
      app: App,
      body: Record<string, unknown>,
      headers: Record<string, string> = ALICE,
    ): Promise<Network> => {
      const r = await call(app, "POST", "/v1/networks", {
        json: body,
        headers,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };
    const mkVm = async (
      app: App,
      networks: string[],
      headers: Record<string, string> = ALICE,
    ): Promise<{ vm: Vm; task: Task }> => {
      const r = await call(app, "POST", "/v1/vms", {
        json: { name: "web", cpus: 1, memory: 128, networks },
        headers,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };
    const place = async (store: Store, id: string, host: string) => {
      const cur = (await store.get(keys.vm(id), Vm))!;
      const status = { ...cur.value.status, phase: "running" as const, host };
      assert.ok(
        (await store.txn().ifModRevision(cur.key, cur.modRevision)
          .put(cur.key, { ...cur.value, status }).commit()).ok,
      );
    };
    await body({ fresh, step, mkNet, mkVm, place });
  });
}
