/**
 * The Prometheus of `deno task up` (scripts/up_prometheus.ts), a real one
 * from Debian's package in a temp state directory: its generated
 * configuration passes `promtool check config`, a second start finds it
 * running and reconfigures it instead of starting another, a stale pid
 * file starts a new one, and `stop()` leaves no process and no pid file.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../core/config.ts";
import { freePort } from "../core/etcd_server.ts";
import { prometheusDir, startUpPrometheus } from "../scripts/up_prometheus.ts";
import { promtool } from "./helpers/prometheus.ts";

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
