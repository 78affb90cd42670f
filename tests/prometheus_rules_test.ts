/**
 * monitoring/: the alert rules pass `promtool check rules` and their unit
 * tests (`promtool test rules monitoring/rules_test.yml`: host dead after
 * 30 s, crash-looping VM, spoofing drops, lease margin, slow failover, etcd
 * near its quota, stuck queue); every metric a rule reads is named in its
 * "Depends on:" comment; every query of the Grafana dashboard is valid
 * PromQL (checked by promtool as recording rules); and every metric name
 * the rules and the dashboard use is one that a real worker (sim driver)
 * and a real API process (api/main.ts) expose, with the labels the
 * queries group, match and name legends by (so a rename breaks this test).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { freePort } from "../core/etcd_server.ts";
import { enqueue, newTask } from "../core/task_doc.ts";
import { newHostKey } from "../core/secrets.ts";
import { RULES_FILE } from "../scripts/prometheus_config.ts";
import { FAMILIES } from "../workers/metrics_families.ts";
import { createVm, waitFor, withCluster } from "./helpers/cluster.ts";
import { ApiProc } from "./helpers/nemesis/api_proc.ts";
import { promtool } from "./helpers/prometheus.ts";
import { putRaw } from "./helpers/skew.ts";
import { metricsUrl, scrape, series } from "./helpers/worker_metrics.ts";

const MONITORING = new URL("../monitoring/", import.meta.url).pathname;
/** Labels every target has (api/monitoring_targets.ts, Prometheus). */
const TARGET_LABELS = ["job", "instance", "host", "replica"];

/** Metric names in a PromQL expression (functions and keywords left out). */
function metricNames(expr: string): Set<string> {
  return new Set(expr.match(/\b(ucloud_[a-z0-9_]+|up)\b/g) ?? []);
}

/** Label names a query matches on, groups or joins by. */
function labelNames(expr: string): Set<string> {
  const out = new Set<string>();
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const l of m[1].matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)) out.add(l[1]);
  }
  const lists =
    /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;
  for (const m of expr.matchAll(lists)) {
    for (const l of m[1].split(",").map((x) => x.trim()).filter(Boolean)) {
      out.add(l);
    }
  }
  return out;
}

/** Each alert of rules.yml: name, expression and the comment above it. */
async function alertRules(): Promise<
  { alert: string; expr: string; comment: string }[]
> {
  const lines = (await Deno.readTextFile(RULES_FILE)).split("\n");
  const out = [];
  let comment = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.startsWith("#")) comment += ` ${line}`;
    const alert = /^- alert: (\S+)/.exec(line);
    if (!alert) {
      if (line === "") comment = "";
      continue;
    }
    let expr = "";
    let j = i + 1;
    while (!/^\s*(labels|annotations):/.test(lines[j])) expr += lines[j++];
    expr = expr.replace(/^\s*expr:\s*(>-)?/, "").replace(/\s*for: \S+$/, "");
    out.push({ alert: alert[1], expr, comment });
    comment = "";
  }
  return out;
}

/** Every query of the dashboard: where it is, its expression and legend. */
async function dashboardQueries(): Promise<
  { where: string; expr: string; legend?: string; ref?: string; id?: number }[]
> {
  const dash = JSON.parse(
    await Deno.readTextFile(`${MONITORING}dashboard.json`),
  );
  const out = [];
  for (const p of dash.panels) {
    for (const t of p.targets ?? []) {
      out.push({
        where: `panel ${p.id} "${p.title}" ${t.refId}`,
        expr: t.expr,
        legend: t.legendFormat,
        ref: t.refId,
        id: p.id,
      });
    }
  }
  for (const v of dash.templating.list) {
    if (v.type === "query") {
      out.push({ where: `variable ${v.name}`, expr: v.definition });
    }
  }
  return out;
}

Deno.test("promtool check rules and the rules' unit tests pass", async () => {
  const check = await promtool(["check", "rules", RULES_FILE]);
  assert.equal(check.code, 0, check.output);
  const unit = await promtool(["test", "rules", `${MONITORING}rules_test.yml`]);
  assert.equal(unit.code, 0, unit.output);
});

Deno.test("every alert rule names the metrics it reads in its comment", async () => {
  const rules = await alertRules();
  for (const { alert, expr, comment } of rules) {
    const depends = /Depends on:(.*)/.exec(comment)?.[1] ?? "";
    for (const name of metricNames(expr)) {
      assert.ok(
        new RegExp(`\\b${name}\\b`).test(depends),
        `${alert} reads ${name}, not named in its "Depends on:"`,
      );
    }
  }
  assert.equal(rules.length, 7);
});

Deno.test("every query of monitoring/dashboard.json is valid PromQL", async () => {
  const rules = (await dashboardQueries()).filter((q) => q.id !== undefined)
    .map((q) => ({
      record: `dashboard:panel_${q.id}_${q.ref}`,
      expr: q.expr.replaceAll("$__rate_interval", "5m")
        .replace(/\$(host|vm)\b/g, ".*"),
    }));
  assert.ok(rules.length >= 30, `only ${rules.length} queries`);
  const dir = await Deno.makeTempDir({ prefix: "uc-dash-" });
  try {
    const file = `${dir}/dashboard_rules.yml`;
    // JSON is YAML: promtool reads it as a rule file.
    await Deno.writeTextFile(
      file,
      JSON.stringify({ groups: [{ name: "dashboard", rules }] }),
    );
    const r = await promtool(["check", "rules", file]);
    assert.equal(r.code, 0, r.output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Metric name -> label names, from a scrape: every `# TYPE` family (a
 * histogram also as its `_bucket` with `le`, `_sum` and `_count`) with the
 * labels of its series.
 */
function exposed(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const names = m[2] === "histogram"
      ? ["_bucket", "_sum", "_count"].map((s) => m[1] + s)
      : [m[1]];
    for (const n of names) out.set(n, new Set());
  }
  for (const s of series(text)) {
    for (const l of Object.keys(s.labels)) out.get(s.name)?.add(l);
  }
  return out;
}

Deno.test({
  name:
    "every metric of the rules and the dashboard is exposed by a real worker or the API, with the labels the queries use",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withCluster(async (c) => {
      await c.addWorker({
        name: "h1",
        env: {
          UCLOUD_DRIVER: "sim",
          UCLOUD_WORKER_METRICS_LISTEN: "127.0.0.1",
        },
      });
      // Identity on (its failures counter exists only then); no directory
      // is needed for a refusal without credentials.
      const configFile = `${c.dir}/api.json`;
      await Deno.writeTextFile(`${c.dir}/identity.key`, newHostKey());
      await Deno.writeTextFile(
        configFile,
        JSON.stringify({
          stateDir: `${c.dir}/api-state`,
          identity: {
            keyFile: `${c.dir}/identity.key`,
            ldap: {
              url: `ldap://127.0.0.1:${freePort()}`,
              baseDn: "dc=ucloud,dc=test",
            },
          },
        }),
      );
      const api = new ApiProc({
        env: { ...c.env, UCLOUD_CONFIG: configFile },
        logFile: `${c.dir}/api.log`,
      });
      await api.start();
      let apiText = "", workerText: string;
      try {
        // Something for every labelled family of the API: a VM placed by
        // its vm.create task (tasks, outcomes, placements), a task left
        // queued (queue), a refused request, an unreadable document.
        const refused = await fetch(`${api.url}/v1/vms`);
        assert.equal(refused.status, 401, await refused.text());
        await createVm(createApp({ store: c.store, config: c.config }), "m1");
        await putRaw(c, "vm/vm-junk", "not json");
        // A task for a host that does not exist stays queued.
        await enqueue(
          c.store.txn(),
          newTask({ kind: "vm.start", target: "h-parked", payload: {} }),
        ).commit();
        const w = await scrape(await metricsUrl(c.store, "h1"));
        assert.equal(w.status, 200, w.text);
        workerText = w.text;
        const wanted = [
          "ucloud_task_outcomes_total",
          "ucloud_task_queue_depth",
          "ucloud_placements_total",
          "ucloud_auth_failures_total",
          "ucloud_store_unreadable_documents_total",
          // Read once the API's first status call is back.
          "ucloud_etcd_db_size_bytes",
        ];
        await waitFor(
          `series of ${wanted.join(", ")}`,
          async () => {
            apiText = await (await fetch(`${api.url}/metrics`)).text();
            return wanted.every((n) =>
              new RegExp(`^${n}\\{`, "m").test(apiText)
            );
          },
          60_000,
          250,
        );
      } finally {
        await api.kill();
      }
      const known = exposed(workerText + "\n" + apiText);
      known.set("up", new Set());
      // Families of the sim worker without series (disks, NICs, networks):
      // their labels as the worker declares them.
      for (const f of FAMILIES) {
        for (const l of f.labels) known.get(f.name)?.add(l);
      }

      const queries = [
        ...(await alertRules()).map((r) => ({
          where: `alert ${r.alert}`,
          expr: r.expr,
          legend: undefined as string | undefined,
        })),
        ...await dashboardQueries(),
      ];
      const problems: string[] = [];
      for (const q of queries) {
        const names = [...metricNames(q.expr)];
        for (const n of names.filter((n) => !known.has(n))) {
          problems.push(`${q.where}: no metric ${n} is exposed`);
        }
        const labels = new Set(TARGET_LABELS);
        for (const n of names) {
          for (const l of known.get(n) ?? []) labels.add(l);
        }
        const used = labelNames(q.expr);
        for (const l of (q.legend ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
          used.add(l[1]);
        }
        for (const l of used) {
          if (l !== "__name__" && !labels.has(l)) {
            problems.push(`${q.where}: no label ${l} on ${names.join(", ")}`);
          }
        }
      }
      assert.deepEqual(problems, []);
      assert.ok(queries.length >= 40, `only ${queries.length} queries`);
    }, { guest: false });
  },
});
