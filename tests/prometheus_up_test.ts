/**
 * The Prometheus of `deno task up` (scripts/up_prometheus.ts), a real one
 * from Debian's package in a temp state directory: its generated
 * configuration passes `promtool check config`, a second start finds it
 * running and reconfigures it instead of starting another, a stale pid
 * file starts a new one, and `stop()` leaves no process and no pid file.
 * And the real `deno task up` (scripts/up.ts, sim driver, a temp state
 * directory, free ports): its Prometheus gets the series of its worker,
 * which serves /metrics on the host's address (not loopback) and takes the
 * host's own addresses (`upWorkerMetricsEnv`); Ctrl-C leaves nothing.
 */
import assert from "node:assert/strict";
import { defaultRunDir, parseConfig } from "../core/config.ts";
import { freePort } from "../core/etcd_server.ts";
import {
  prometheusDir,
  startUpPrometheus,
  upWorkerMetricsEnv,
} from "../scripts/up_prometheus.ts";
import { ensureGuest, ROOT, waitFor } from "./helpers/cluster.ts";
import { pidsMentioning } from "./helpers/ns_worker.ts";
import { activeTargets, promtool, query } from "./helpers/prometheus.ts";

const alive = (pid: number) => {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
};

Deno.test({
  name:
    "startUpPrometheus() writes a valid config, reuses a running Prometheus and stops it without leftovers",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "uc-prom-up-" });
    const pids: number[] = [];
    try {
      await Deno.writeTextFile(`${dir}/token`, "up-test-token-0123456789");
      const config = parseConfig({
        stateDir: dir,
        api: { metrics: { bearerTokenFile: `${dir}/token` } },
        prometheus: { port: freePort() },
      }, () => undefined);
      const api = "http://127.0.0.1:8750";
      const first = await startUpPrometheus(config, api);
      pids.push(first.pid);
      assert.equal(first.adopted, false);
      assert.equal(first.url, `http://127.0.0.1:${config.prometheus.port}`);
      const file = `${prometheusDir(config)}/prometheus.yml`;
      const text = await Deno.readTextFile(file);
      assert.match(text, /"url": "http:\/\/127\.0\.0\.1:8750\/v1\/monitoring/);
      assert.match(text, /"credentials_file": ".*\/token"/);
      const check = await promtool(["check", "config", file]);
      assert.equal(check.code, 0, check.output);

      const second = await startUpPrometheus(config, api);
      assert.equal(second.adopted, true);
      assert.equal(second.pid, first.pid);
      await second.stop();
      assert.equal(alive(first.pid), false);
      await assert.rejects(
        Deno.stat(`${prometheusDir(config)}/prometheus.pid`),
      );

      // A pid file naming a process that is gone: a new Prometheus starts.
      await Deno.writeTextFile(
        `${prometheusDir(config)}/prometheus.pid`,
        JSON.stringify({ pid: first.pid, url: first.url }),
      );
      const third = await startUpPrometheus(config, api);
      pids.push(third.pid);
      assert.equal(third.adopted, false);
      assert.notEqual(third.pid, first.pid);
      await third.stop();
      assert.equal(alive(third.pid), false);
    } finally {
      for (const pid of pids.filter(alive)) Deno.kill(pid, "SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("upWorkerMetricsEnv() allows worker.metrics.allow and this host's addresses", () => {
  const config = parseConfig({
    worker: { metrics: { allow: ["127.0.0.1", "2001:db8:9::/64"] } },
  }, () => undefined);
  assert.deepEqual(
    upWorkerMetricsEnv(config, ["10.0.0.7", "2001:db8::5", "127.0.0.1"]),
    {
      UCLOUD_WORKER_METRICS_ALLOW:
        "127.0.0.1,2001:db8:9::/64,10.0.0.7,2001:db8::5",
    },
  );
});

/** Reads `stream` line by line until `re` matches one; returns the match. */
async function readUntil(
  lines: AsyncIterator<string>,
  re: RegExp,
  seen: string[],
): Promise<RegExpMatchArray> {
  while (true) {
    const next = await lines.next();
    if (next.done) throw new Error(`up said no ${re}:\n${seen.join("\n")}`);
    seen.push(next.value);
    const m = re.exec(next.value);
    if (m) return m;
  }
}

async function* splitLines(s: ReadableStream<Uint8Array>) {
  let rest = "";
  for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest) yield rest;
}

Deno.test({
  name:
    "deno task up: its Prometheus scrapes the API and the worker, which serves on the host's address; Ctrl-C leaves nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "uc-prom-upcloud-" });
    const state = `${dir}/state`;
    // The test guest is built once (up builds it into its state dir).
    await Deno.mkdir(state);
    await Deno.symlink(`${await ensureGuest()}`, `${state}/images`);
    const configFile = `${dir}/config.json`;
    await Deno.writeTextFile(
      configFile,
      JSON.stringify({
        stateDir: state,
        etcd: {
          endpoints: [`http://127.0.0.1:${freePort()}`],
          prefix: "/uptest",
        },
        api: { port: freePort() },
        prometheus: { port: freePort() },
        worker: { host: "up-test", metrics: { port: 0 } },
      }),
    );
    const up = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}scripts/up.ts`],
      cwd: ROOT,
      env: {
        UCLOUD_CONFIG: configFile,
        UCLOUD_DRIVER: "sim",
        UCLOUD_CONSOLE_PORT: "0",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const lines = splitLines(up.stdout)[Symbol.asyncIterator]();
    const said: string[] = [];
    try {
      const [, url] = await readUntil(
        lines,
        /^\s*prometheus: (http:\/\/\S+)/,
        said,
      );
      // Keep reading: the worker writes to the same pipe.
      (async () => {
        while (!(await lines.next()).done) { /* drain */ }
      })();
      const worker = await waitFor(
        "the worker's cores from up's Prometheus",
        async () => {
          const r = await query(url, 'ucloud_host_cpus{job="ucloud-worker"}');
          return r.length === 1 ? r[0] : null;
        },
        90_000,
        500,
      );
      assert.equal(worker.metric.host, "up-test");
      const targets = await activeTargets(url);
      const w = targets.find((x) => x.labels.job === "ucloud-worker")!;
      assert.equal(w.health, "up", w.lastError);
      const host = new URL(w.scrapeUrl).hostname.replace(/^\[|\]$/g, "");
      assert.notEqual(
        host,
        "127.0.0.1",
        "the worker serves on the host's address",
      );
      assert.notEqual(host, "::1");
      // Targets are scraped at their own offsets in the interval: the API's
      // may not have had its first scrape when the worker's series came.
      await waitFor(
        "up's Prometheus to have scraped the API",
        async () =>
          (await activeTargets(url)).some((x) =>
            x.labels.job === "ucloud-api" && x.health === "up"
          ),
        60_000,
        500,
      );
    } finally {
      try {
        up.kill("SIGINT");
      } catch { /* gone */ }
      await up.status;
      // The host's fencer outlives a stopped worker until its deadline.
      const runDir = defaultRunDir(state);
      const fencer = Number(
        await Deno.readTextFile(`${runDir}/fencer.pid`).catch(() => "0"),
      );
      if (fencer > 1) {
        try {
          Deno.kill(fencer, "SIGKILL");
        } catch { /* gone */ }
      }
      await Deno.remove(runDir, { recursive: true }).catch(() => {});
      const left = await waitFor(
        "up's processes gone",
        async () => {
          const l = await pidsMentioning(dir);
          return l.length === 0 ? [] : null;
        },
        15_000,
        250,
      ).catch(async () => await pidsMentioning(dir));
      await Deno.remove(dir, { recursive: true });
      assert.deepEqual(left, []);
    }
  },
});
