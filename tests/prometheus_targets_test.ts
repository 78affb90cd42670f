/**
 * `GET /v1/monitoring/targets` against a real etcd: who may read it (an
 * address of api.metrics.allow, the metrics bearer token, or an admin's
 * login; not a user, not an admin acting as one), the http_sd JSON it
 * builds from `apimetrics/` and the host documents' `metrics.url`, and the
 * watched targets following puts and deletes.
 */
import assert from "node:assert/strict";
import type { MiddlewareHandler } from "hono";
import { createApp } from "../api/app.ts";
import type { AppEnv } from "../api/env.ts";
import { MonitoringTargets } from "../api/monitoring_targets.ts";
import { parseConfig } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import type { Host } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { waitFor } from "./helpers/cluster.ts";

const TOKEN = "targets-test-token-0123456789";
const noSanitize = { sanitizeOps: false, sanitizeResources: false };

/** Test login: `X-Test-User: alice` (admin) or `bob`; none is a 401. */
const testAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const who = c.req.header("x-test-user");
  if (!who) {
    return c.json({ error: { status: 401, code: "unauthorized" } }, 401);
  }
  c.set("principal", { name: who, admin: who === "alice" });
  await next();
};

function host(name: string, url?: string): Host {
  return {
    name,
    capacity: { cpus: 2, memoryMiB: 2048 },
    addresses: ["2001:db8::1"],
    os: "linux",
    drivers: ["qemu"],
    state: "active",
    registeredAt: "2026-01-01T00:00:00.000Z",
    ...(url ? { metrics: { url } } : {}),
  };
}

const expected = [
  {
    targets: ["127.0.0.1:8750"],
    labels: {
      __metrics_path__: "/metrics",
      __scheme__: "http",
      job: "ucloud-api",
      host: "127.0.0.1",
      replica: "127.0.0.1-8750",
    },
  },
  {
    targets: ["[2001:db8::1]:9469"],
    labels: {
      __metrics_path__: "/metrics",
      __scheme__: "http",
      job: "ucloud-worker",
      host: "h1",
    },
  },
  {
    targets: ["h2.example:443"],
    labels: {
      __metrics_path__: "/w/metrics",
      __scheme__: "https",
      job: "ucloud-worker",
      host: "h2",
    },
  },
];

Deno.test({
  name:
    "GET /v1/monitoring/targets serves http_sd JSON to scrapers and admins only",
  ...noSanitize,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "uc-targets-" });
    const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
    const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/t" });
    try {
      await Deno.writeTextFile(`${dir}/token`, TOKEN);
      await store.txn()
        .put(keys.apiMetrics("127.0.0.1-8750"), {
          url: "http://127.0.0.1:8750/metrics",
        })
        .put(keys.host("h1"), host("h1", "http://[2001:db8::1]:9469/metrics"))
        .put(keys.host("h2"), host("h2", "https://h2.example/w/metrics"))
        .put(keys.host("h3"), host("h3"))
        .put(keys.host("h4"), host("h4", "ftp://h4/metrics"))
        .commit();
      const app = createApp({
        store,
        auth: testAuth,
        config: parseConfig({
          stateDir: dir,
          api: {
            metrics: { allow: ["127.0.0.1"], bearerTokenFile: `${dir}/token` },
          },
        }, () => undefined),
      });
      const get = async (from: string, headers: Record<string, string>) => {
        const res = await app.request("/v1/monitoring/targets", { headers }, {
          remoteAddr: { hostname: from },
        });
        return { status: res.status, body: await res.json() };
      };
      const out = "192.0.2.7";
      const cases: [string, Record<string, string>, number][] = [
        ["127.0.0.1", {}, 200],
        [out, { authorization: `Bearer ${TOKEN}` }, 200],
        [out, { "x-test-user": "alice" }, 200],
        [out, {}, 401],
        [out, { authorization: "Bearer not-the-metrics-token" }, 401],
        [out, { "x-test-user": "bob" }, 403],
        [out, { "x-test-user": "alice", "x-act-as": "bob" }, 403],
      ];
      for (const [from, headers, status] of cases) {
        const r = await get(from, headers);
        const what = `${from} ${JSON.stringify(headers)}`;
        assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
        if (status === 200) assert.deepEqual(r.body, expected, what);
      }

      // The watched targets follow puts and deletes.
      const targets = MonitoringTargets.start(store);
      try {
        assert.ok(await targets.waitReady(5000));
        assert.deepEqual(targets.groups(), expected);
        const watched = createApp({ store, monitoringTargets: targets });
        await store.txn().delete(keys.host("h1"))
          .delete(keys.apiMetrics("127.0.0.1-8750")).commit();
        const hostsNow = async () => {
          const res = await watched.request("/v1/monitoring/targets");
          const body = await res.json() as typeof expected;
          return body.map((g) => g.labels.host).join(",");
        };
        await waitFor(
          "h1 and the API to go",
          async () => await hostsNow() === "h2",
        );
        await store.txn().put(keys.host("h3"), host("h3", "http://h3:1/m"))
          .commit();
        await waitFor("h3 to come", async () => await hostsNow() === "h2,h3");
      } finally {
        await targets.close();
      }
    } finally {
      store.close();
      await etcd.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
