/**
 * The worker's `/metrics` (workers/metrics*.ts), on a real worker process
 * (sim driver) and real etcd: the URL announced in the host document,
 * host and per-VM series with sane values, `promtool check metrics` clean,
 * and who may scrape (worker.metrics.allow, the bearer token file). The
 * per-VM CPU reading of a busy process rises.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { parseConfig } from "../core/config.ts";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import { processStats } from "../workers/metrics_proc.ts";
import { createVm, waitFor, withCluster } from "./helpers/cluster.ts";
import {
  metricsUrl,
  pick,
  promtoolCheck,
  scrape,
  series,
  value,
} from "./helpers/worker_metrics.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };
const TOKEN = "worker-metrics-token-0123456789";

Deno.test({
  name:
    "a worker's /metrics: announced in its host document, host and VM series of a sim VM, promtool-clean, only for allowed scrapers",
  ...noSanitize,
  async fn() {
    await withCluster(async (c) => {
      const tokenFile = `${c.dir}/metrics.token`;
      await Deno.writeTextFile(tokenFile, TOKEN);
      await c.addWorker({
        name: "h1",
        cpus: 4,
        memoryMiB: 2048,
        env: {
          UCLOUD_DRIVER: "sim",
          UCLOUD_WORKER_METRICS_PORT: "0",
          UCLOUD_WORKER_METRICS_LISTEN: "127.0.0.1",
          UCLOUD_WORKER_METRICS_ALLOW: "127.0.0.2",
          UCLOUD_WORKER_METRICS_TOKEN_FILE: tokenFile,
        },
      });
      const url = await metricsUrl(c.store, "h1");
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const app = createApp({ store: c.store, config: c.config });
      const vm = await createVm(app, "m1");
      await waitFor(
        "m1 running",
        async () => {
          const d = await c.store.get(keys.vm(vm.id), Vm);
          return d?.value.status.phase === "running";
        },
        30_000,
        100,
      );

      // 127.0.0.1 is not allowed; 127.0.0.2 is; the token lets anyone in.
      const refused = await scrape(url);
      assert.equal(refused.status, 403, refused.text);
      assert.doesNotMatch(refused.text, /ucloud_/);
      assert.equal(JSON.parse(refused.text).error.code, "forbidden");
      const wrong = await scrape(url, { token: "x".repeat(20) });
      assert.equal(wrong.status, 401, wrong.text);
      assert.equal((await scrape(url, { token: TOKEN })).status, 200);
      const r = await scrape(url, { from: "127.0.0.2" });
      assert.equal(r.status, 200, r.text);

      assert.equal(await promtoolCheck(r.text), "");
      const s = series(r.text);
      const id = { vm: vm.id, name: "m1", owner: vm.owner };
      assert.equal(value(s, "ucloud_host_cpus"), 4);
      assert.equal(value(s, "ucloud_host_memory_bytes"), 2048 * 1024 ** 2);
      assert.equal(value(s, "ucloud_host_reserved_cpus"), 1);
      assert.equal(value(s, "ucloud_host_reserved_vms"), 1);
      assert.equal(value(s, "ucloud_host_vms", { phase: "running" }), 1);
      assert.ok(value(s, "ucloud_host_load1") >= 0);
      assert.ok(value(s, "ucloud_host_memory_available_bytes") > 0);
      // Disk use: the state directory's filesystem, as statfs tells.
      const fsSize = value(s, "ucloud_host_filesystem_size_bytes");
      const fsUsed = value(s, "ucloud_host_filesystem_used_bytes");
      assert.ok(fsSize > 0 && fsUsed > 0 && fsUsed <= fsSize, `${fsUsed}`);
      assert.ok(value(s, "ucloud_host_filesystem_available_bytes") <= fsSize);
      assert.equal(value(s, "ucloud_host_info", { host: "h1" }), 1);
      // Lease health: a keep-alive within the TTL, the deadline ahead.
      const age = value(s, "ucloud_lease_keepalive_age_seconds");
      const margin = value(s, "ucloud_lease_deadline_margin_seconds");
      assert.ok(age >= 0 && age < 2, `keep-alive age ${age}`);
      assert.ok(margin > 0 && margin <= 2, `deadline margin ${margin}`);
      assert.equal(value(s, "ucloud_vm_state", { ...id, phase: "running" }), 1);
      assert.equal(value(s, "ucloud_vm_restarts", id), 0);
      assert.equal(value(s, "ucloud_vm_info_virtual_cpus", id), 1);
      assert.equal(
        value(s, "ucloud_vm_info_maximum_memory_bytes", id),
        128 * 1024 ** 2,
      );
      assert.ok(value(s, "ucloud_vm_info_memory_usage_bytes", id) > 0);
      assert.ok(value(s, "ucloud_vm_cpu_time_seconds_total", id) >= 0);
      // A sim VM has no disk and no NICs: no such series, no errors.
      assert.deepEqual(pick(s, "ucloud_vm_block_read_bytes_total"), []);
      assert.deepEqual(pick(s, "ucloud_scrape_errors_total"), []);
    }, { guest: false });
  },
});

Deno.test("processStats() reads a busy process's CPU time rising, and nothing of a process not owning the pidfile", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uc-wm-proc-" });
  const pidfile = `${dir}/busy.pid`;
  const busy = new Deno.Command("bash", {
    args: ["-c", "while :; do :; done", pidfile],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    // Right after the spawn, /proc may show the process before its
    // memory is mapped (RSS 0): wait for the running process.
    const first = await waitFor(
      "busy process seen",
      async () => {
        const p = await processStats(busy.pid, pidfile);
        return p && p.rssBytes > 0 ? p : null;
      },
    );
    assert.ok(first.cpuSeconds >= 0 && first.rssBytes > 0);
    const later = await waitFor(
      "its CPU time rises",
      async () => {
        const p = await processStats(busy.pid, pidfile);
        return p && p.cpuSeconds > first.cpuSeconds ? p : null;
      },
      30_000,
      100,
    );
    assert.ok(later.cpuSeconds > first.cpuSeconds);
    assert.equal(await processStats(busy.pid, `${dir}/other.pid`), null);
  } finally {
    busy.kill("SIGKILL");
    await busy.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: worker.metrics defaults to port 9469 and loopback scrapers; UCLOUD_WORKER_METRICS_* set it; a CIDR is no listen address", () => {
  const d = parseConfig({}, () => undefined).worker.metrics;
  assert.deepEqual(
    [d.enabled, d.port, d.listen, d.allow, d.qmpTimeoutMs],
    [true, 9469, undefined, ["127.0.0.1", "::1"], 1000],
  );
  const env: Record<string, string> = {
    UCLOUD_WORKER_METRICS_PORT: "0",
    UCLOUD_WORKER_METRICS_LISTEN: "2001:db8::1",
    UCLOUD_WORKER_METRICS_ALLOW: "2001:db8:9::/64, 10.0.0.7",
    UCLOUD_WORKER_METRICS_TOKEN_FILE: "/etc/ucloud/metrics.token",
    UCLOUD_WORKER_METRICS_ENABLED: "0",
  };
  const m = parseConfig({}, (n) => env[n]).worker.metrics;
  assert.deepEqual(m, {
    enabled: false,
    port: 0,
    listen: "2001:db8::1",
    allow: ["2001:db8:9::/64", "10.0.0.7"],
    bearerTokenFile: "/etc/ucloud/metrics.token",
    qmpTimeoutMs: 1000,
  });
  assert.throws(
    () =>
      parseConfig({ worker: { metrics: { listen: "::/0" } } }, () => undefined),
    /worker\.metrics\.listen/,
  );
});
