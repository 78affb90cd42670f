/**
 * Service routes of the API against a real etcd: GET /v1/tasks filters and
 * order, the OpenAPI document, /metrics and /healthz (ok, and 503 when etcd
 * does not answer).
 */
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { createApp } from "../api/app.ts";
import { TaskCounts } from "../api/task_counts.ts";
import { assertError, call, noSanitize } from "./helpers/api.ts";
import { freePort } from "../core/etcd_server.ts";
import { Task } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { input, place } from "./helpers/api_fixtures.ts";
import { withApiEnv } from "./helpers/api_env.ts";
import { waitFor } from "./helpers/cluster.ts";

Deno.test({
  name: "api: /v1 against a real etcd: tasks, openapi, metrics, health",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ stores, connect, fresh, step, create }) => {
      await step(
        "GET /v1/tasks filters, limits and sorts newest first",
        async () => {
          const { store, app } = fresh();
          const a = await create(app);
          const b = await create(app, { ...input, name: "web2" });
          await place(store, b.vm.id, "h1", "running");
          const stop =
            (await call(app, "POST", `/v1/vms/${b.vm.id}/stop`)).body.task;
          const ids = async (q: string) =>
            (await call(app, "GET", `/v1/tasks${q}`)).body.items.map((
              t: Task,
            ) => t.id);
          assert.deepEqual(await ids(""), [stop.id, b.task.id, a.task.id]);
          assert.deepEqual(await ids("?limit=2"), [stop.id, b.task.id]);
          assert.deepEqual(await ids("?kind=vm.create"), [
            b.task.id,
            a.task.id,
          ]);
          assert.deepEqual(await ids(`?vm=${a.vm.id}`), [a.task.id]);
          assert.deepEqual(await ids("?target=h1"), [stop.id]);
          assert.deepEqual(await ids("?state=queued&target=any&limit=1"), [
            b.task.id,
          ]);
          assert.deepEqual(await ids("?state=succeeded"), []);
        },
      );

      await step("GET /v1/openapi.json describes every route", async () => {
        const { app } = fresh();
        const r = await call(app, "GET", "/v1/openapi.json");
        assert.equal(r.status, 200);
        assert.match(r.body.openapi, /^3\./);
        assert.equal(r.body.info.title, "ucloud");
        const paths = r.body.paths;
        assert.deepEqual(Object.keys(paths).sort(), [
          "/v1/auth/whoami",
          "/v1/events",
          "/v1/hosts",
          "/v1/hosts/{name}/drain",
          "/v1/hosts/{name}/enable",
          "/v1/hosts/{name}/shutdown",
          "/v1/images",
          "/v1/images/{name}",
          "/v1/images/{name}/publish",
          "/v1/images/{name}/unpublish",
          "/v1/images/{name}/upload",
          "/v1/keys",
          "/v1/keys/{name}",
          "/v1/maintenance/etcd",
          "/v1/maintenance/rebalance",
          "/v1/monitoring/targets",
          "/v1/networks",
          "/v1/networks/{id}",
          "/v1/tasks",
          "/v1/tasks/{id}",
          "/v1/tasks/{id}/drain",
          "/v1/users",
          "/v1/users/{name}/quota",
          "/v1/vms",
          "/v1/vms/{id}",
          "/v1/vms/{id}/console",
          "/v1/vms/{id}/nics",
          "/v1/vms/{id}/nics/{slot}",
          "/v1/vms/{id}/reboot",
          "/v1/vms/{id}/start",
          "/v1/vms/{id}/stop",
          "/v1/vms/{id}/user-data",
        ]);
        for (const action of ["stop", "reboot"]) {
          const power = paths[`/v1/vms/{id}/${action}`].post.requestBody;
          assert.equal(power.required, false);
          assert.ok(power.content["application/json"].schema);
        }
        assert.deepEqual(Object.keys(paths["/v1/vms"]).sort(), ["get", "post"]);
        assert.deepEqual(Object.keys(paths["/v1/vms/{id}"]).sort(), [
          "delete",
          "get",
        ]);
        const post = paths["/v1/vms"].post;
        assert.ok(post.requestBody.content["application/json"].schema);
        const body = post.requestBody.content["application/json"].schema;
        assert.deepEqual(body.properties.disk, {
          type: "integer",
          minimum: 1,
          maximum: 65536,
          description:
            "GiB of local disk; absent: the image's own size, no disk reserved",
        });
        assert.ok(!body.required.includes("disk"));
        assert.equal(body.additionalProperties, false);
        assert.ok(
          post.parameters.some((p: { name: string }) =>
            p.name === "Idempotency-Key"
          ),
        );
        assert.ok(r.body.components.schemas.Vm);
        assert.ok(r.body.components.schemas.Task);
        assert.ok(r.body.components.schemas.Error);
      });

      await step(
        "GET /metrics reports HTTP, queue and task metrics",
        async () => {
          const registry = new Registry();
          const store = connect();
          const taskCounts = TaskCounts.start(store);
          const app = createApp({ store, registry, taskCounts });
          const { vm } = await create(app);
          await create(app, { ...input, name: "web2" });
          await place(store, vm.id, "h1", "running");
          await call(app, "POST", `/v1/vms/${vm.id}/stop`);
          await call(app, "GET", `/v1/vms/${vm.id}`);
          await call(app, "GET", "/v1/vms/vm-nope-0");
          await call(app, "GET", "/no/such/path");
          // The task gauges follow a watch: scrape until it has caught up,
          // from loopback (the default api.metrics.allow).
          const gauges = [
            'ucloud_task_queue_depth{target="any"} 2',
            'ucloud_task_queue_depth{target="h1"} 1',
            'ucloud_tasks{kind="vm.create",state="queued"} 2',
            'ucloud_tasks{kind="vm.stop",state="queued"} 1',
          ];
          const text = await waitFor("the task gauges", async () => {
            const r = await app.request("/metrics", {}, {
              remoteAddr: { hostname: "127.0.0.1" },
            });
            assert.equal(r.status, 200);
            assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
            const t = await r.text();
            return gauges.every((g) => t.includes(g)) && t;
          }, 20_000).finally(() => taskCounts.close());
          const has = (s: string) =>
            assert.ok(text.includes(s), `missing ${s} in\n${text}`);
          has(
            'ucloud_http_requests_total{method="POST",route="/v1/vms",status="201"} 2',
          );
          has(
            'ucloud_http_requests_total{method="GET",route="/v1/vms/:id",status="200"} 1',
          );
          has(
            'ucloud_http_requests_total{method="GET",route="/v1/vms/:id",status="404"} 1',
          );
          has(
            'ucloud_http_requests_total{method="POST",route="/v1/vms/:id/stop",status="202"} 1',
          );
          has(
            'ucloud_http_requests_total{method="GET",route="unmatched",status="404"} 1',
          );
          has(
            'ucloud_http_request_duration_seconds_count{method="POST",route="/v1/vms"} 2',
          );
          assert.ok(!text.includes("vm-nope-0"));
          // The registry handed in is the one served.
          assert.match(await registry.metrics(), /ucloud_tasks/);
          // A second app has its own registry: no duplicate registration.
          fresh();
        },
      );

      await step("GET /healthz says ok while etcd answers", async () => {
        const { app } = fresh();
        const r = await call(app, "GET", "/healthz");
        assert.equal(r.status, 200);
        assert.deepEqual(r.body, { ok: true });
      });

      await step(
        "an unreachable etcd gives 503 on /healthz and the API",
        async () => {
          const store = Store.connect({
            endpoints: [`http://127.0.0.1:${freePort()}`],
            prefix: "/t/dead",
            timeoutMs: 300,
          });
          stores.push(store);
          const app = createApp({ store });
          const h = await call(app, "GET", "/healthz");
          assert.equal(h.status, 503);
          assert.equal(h.body.ok, false);
          const r = await call(app, "GET", "/v1/vms");
          assertError(r, 503, undefined, /etcd/);
          const c = await call(app, "POST", "/v1/vms", { json: input });
          assertError(c, 503, undefined, /etcd/);
        },
      );
    }),
});
