/**
 * A real Prometheus (Debian's package) configured by
 * scripts/prometheus_config.ts finds the cloud through the real
 * `GET /v1/monitoring/targets` of real API processes (api/main.ts, which
 * announce themselves under `apimetrics/`) and scrapes them, with the
 * metrics bearer token on discovery and scrapes (the API allows no
 * address, so nothing gets in without it). Workers are found by the
 * `metrics.url` of their host documents: h1 is a real worker process (sim
 * driver) that also takes only the token, and h2 a host document whose
 * URL is a port nobody listens on, which fires the host-dead alert of
 * monitoring/rules.yml (its `for:` shortened to 1 s in the test's copy;
 * the 30 s are tested by monitoring/rules_test.yml). A host document
 * deleted, or an API replica stopped, takes its target away (a crashed
 * one when its lease expires). The API's and the worker's /metrics pass
 * `promtool check metrics`.
 */
import assert from "node:assert/strict";
import { freePort } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import type { Host } from "../core/schemas.ts";
import { startPrometheus } from "../scripts/prometheus.ts";
import {
  prometheusConfigText,
  RULES_FILE,
} from "../scripts/prometheus_config.ts";
import { startCluster, waitFor } from "./helpers/cluster.ts";
import { ApiProc } from "./helpers/nemesis/api_proc.ts";
import {
  activeTargets,
  alerts,
  promtool,
  query,
} from "./helpers/prometheus.ts";
import { metricsUrl, scrape } from "./helpers/worker_metrics.ts";

const TOKEN = "prometheus-test-token-0123456789";
const WAIT_MS = 60_000;

function hostDoc(name: string, url: string): Host {
  return {
    name,
    capacity: { cpus: 2, memoryMiB: 2048 },
    addresses: ["127.0.0.1"],
    os: "linux",
    drivers: ["sim"],
    state: "active",
    registeredAt: new Date().toISOString(),
    metrics: { url },
  };
}

Deno.test({
  name:
    "Prometheus discovers API replicas and hosts through /v1/monitoring/targets, scrapes them and fires host-dead",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const c = await startCluster({ guest: false });
    const { dir, store } = c;
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, TOKEN + "\n");
    const configFile = `${dir}/config.json`;
    const onlyToken = { allow: [], bearerTokenFile: tokenFile };
    await Deno.writeTextFile(
      configFile,
      JSON.stringify({
        stateDir: `${dir}/state`,
        api: { metrics: onlyToken },
        worker: { metrics: onlyToken },
      }),
    );
    const env = { ...c.env, UCLOUD_CONFIG: configFile };
    const apiA = new ApiProc({ env, logFile: `${dir}/api-a.log` });
    const apiB = new ApiProc({ env, logFile: `${dir}/api-b.log` });
    let prom: Awaited<ReturnType<typeof startPrometheus>> | undefined;
    try {
      await apiA.start();
      await c.addWorker({
        name: "h1",
        env: {
          UCLOUD_CONFIG: configFile,
          UCLOUD_DRIVER: "sim",
          UCLOUD_WORKER_METRICS_LISTEN: "127.0.0.1",
        },
      });
      const workerUrl = await metricsUrl(store, "h1");
      const down = `http://127.0.0.1:${freePort()}/metrics`;
      await store.txn().put(keys.host("h2"), hostDoc("h2", down)).commit();

      // The rules with every `for:` at 1 s, so the alert fires at once.
      const rules = (await Deno.readTextFile(RULES_FILE))
        .replace(/for: \d+[smh]/g, "for: 1s");
      await Deno.writeTextFile(`${dir}/rules.yml`, rules);
      const config = prometheusConfigText({
        apiUrl: apiA.url,
        rulesFile: `${dir}/rules.yml`,
        tokenFile,
        scrapeInterval: "1s",
        evaluationInterval: "1s",
        refreshInterval: "1s",
      });

      await t.step("promtool checks the rules and the config", async () => {
        const r = await promtool(["check", "rules", RULES_FILE]);
        assert.equal(r.code, 0, r.output);
        await Deno.writeTextFile(`${dir}/prometheus.yml`, config);
        const c = await promtool(["check", "config", `${dir}/prometheus.yml`]);
        assert.equal(c.code, 0, c.output);
      });

      prom = await startPrometheus({ dir: `${dir}/prometheus`, config });
      const url = prom.url;
      const targets = async (job: string) =>
        (await activeTargets(url)).filter((x) => x.labels.job === job);

      await t.step(
        "the API replica is found and scraped; promtool checks its metrics",
        async () => {
          const up = await waitFor(
            "up of the API replica",
            async () => {
              const r = await query(url, 'up{job="ucloud-api"} == 1');
              return r.length === 1 ? r[0] : null;
            },
            WAIT_MS,
            250,
          );
          assert.equal(up.metric.instance, `127.0.0.1:${apiA.port}`);
          assert.equal(up.metric.replica, `127.0.0.1-${apiA.port}`);
          const requests = await waitFor(
            "the API's request counter",
            () => query(url, 'ucloud_http_requests_total{job="ucloud-api"}'),
          );
          assert.ok(requests.every((s) => s.value >= 1));
          const res = await fetch(`${apiA.url}/metrics`, {
            headers: { authorization: `Bearer ${TOKEN}` },
          });
          assert.equal(res.status, 200);
          const lint = await promtool(["check", "metrics"], await res.text());
          assert.equal(lint.code, 0, lint.output);
        },
      );

      await t.step(
        "worker h1 is scraped at its metrics.url with the token; promtool checks its metrics",
        async () => {
          const cpus = await waitFor(
            "h1's cores from Prometheus",
            async () => {
              const r = await query(url, 'ucloud_host_cpus{host="h1"}');
              return r.length === 1 ? r[0] : null;
            },
            WAIT_MS,
            250,
          );
          assert.equal(cpus.value, 4);
          assert.equal(cpus.metric.job, "ucloud-worker");
          assert.equal(cpus.metric.instance, new URL(workerUrl).host);
          // The worker takes nobody without the token: Prometheus sent it.
          assert.equal((await scrape(workerUrl)).status, 403);
          const r = await scrape(workerUrl, { token: TOKEN });
          assert.equal(r.status, 200, r.text);
          const lint = await promtool(["check", "metrics"], r.text);
          assert.equal(lint.code, 0, lint.output);
        },
      );

      await t.step("host h2, not answering, fires UcloudHostDead", async () => {
        const a = await waitFor(
          "the host-dead alert",
          async () =>
            (await alerts(url)).find((x) =>
              x.labels.alertname === "UcloudHostDead" && x.state === "firing"
            ),
          WAIT_MS,
          250,
        );
        assert.equal(a.labels.host, "h2");
        assert.equal(a.labels.severity, "critical");
        const firing = (await alerts(url)).filter((x) =>
          x.labels.alertname === "UcloudHostDead"
        );
        assert.deepEqual(firing.map((x) => x.labels.host), ["h2"]);
      });

      await t.step("a deleted host document drops its target", async () => {
        assert.equal((await targets("ucloud-worker")).length, 2);
        await store.txn().delete(keys.host("h2")).commit();
        await waitFor(
          "h2's target to go",
          async () => {
            const hosts = (await targets("ucloud-worker")).map((x) =>
              x.labels.host
            );
            return hosts.length === 1 && hosts[0] === "h1";
          },
          WAIT_MS,
          250,
        );
      });

      await t.step(
        "a second replica comes and goes with its process",
        async () => {
          await apiB.start();
          await waitFor(
            "both replicas up",
            async () =>
              (await query(url, 'up{job="ucloud-api"} == 1')).length === 2,
            WAIT_MS,
            250,
          );
          await apiB.kill("SIGTERM");
          await waitFor(
            "replica B's target to go",
            async () => {
              const apis = (await targets("ucloud-api")).map((x) =>
                x.labels.instance
              );
              return apis.length === 1 && apis[0] === `127.0.0.1:${apiA.port}`;
            },
            WAIT_MS,
            250,
          );
          const left = await store.keys(keys.apiMetricsAll);
          assert.deepEqual(left, [keys.apiMetrics(`127.0.0.1-${apiA.port}`)]);
        },
      );

      await t.step(
        "a crashed replica goes when its lease expires",
        async () => {
          await apiB.start();
          await waitFor(
            "both replicas up again",
            async () =>
              (await query(url, 'up{job="ucloud-api"} == 1')).length === 2,
            WAIT_MS,
            250,
          );
          await apiB.kill("SIGKILL");
          // ANNOUNCE_TTL_SECONDS (10 s), then the next refresh.
          await waitFor(
            "the crashed replica's target to go",
            async () => (await targets("ucloud-api")).length === 1,
            WAIT_MS,
            250,
          );
          assert.equal((await store.keys(keys.apiMetricsAll)).length, 1);
        },
      );
    } finally {
      await prom?.stop();
      await apiB.kill();
      await apiA.kill();
      await c.stop();
    }
  },
});
