/**
 * monitoring/: the alert rules pass `promtool check rules` and their unit
 * tests (`promtool test rules monitoring/rules_test.yml`: host dead after
 * 30 s, crash-looping VM, spoofing drops, lease margin, slow failover, etcd
 * near its quota, stuck queue); every metric a rule reads is named in its
 * "Depends on:" comment; every query of the Grafana dashboard is valid
 * PromQL (checked by promtool as recording rules).
 */
import assert from "node:assert/strict";
import { RULES_FILE } from "../scripts/prometheus_config.ts";
import { promtool } from "./helpers/prometheus.ts";

const MONITORING = new URL("../monitoring/", import.meta.url).pathname;

/** Metric names in a PromQL expression (functions and keywords left out). */
function metricNames(expr: string): Set<string> {
  return new Set(expr.match(/\b(ucloud_[a-z0-9_]+|up)\b/g) ?? []);
}

Deno.test("promtool check rules and the rules' unit tests pass", async () => {
  const check = await promtool(["check", "rules", RULES_FILE]);
  assert.equal(check.code, 0, check.output);
  const unit = await promtool(["test", "rules", `${MONITORING}rules_test.yml`]);
  assert.equal(unit.code, 0, unit.output);
});

Deno.test("every alert rule names the metrics it reads in its comment", async () => {
  const lines = (await Deno.readTextFile(RULES_FILE)).split("\n");
  let comment = "";
  let rules = 0;
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
    const depends = /Depends on:(.*)/.exec(comment)?.[1] ?? "";
    for (const name of metricNames(expr.replace(/^\s*(expr|for):/gm, ""))) {
      assert.ok(
        new RegExp(`\\b${name}\\b`).test(depends),
        `${alert[1]} reads ${name}, not named in its "Depends on:"`,
      );
    }
    rules++;
    comment = "";
  }
  assert.equal(rules, 7);
});

Deno.test("every query of monitoring/dashboard.json is valid PromQL", async () => {
  const dash = JSON.parse(
    await Deno.readTextFile(`${MONITORING}dashboard.json`),
  );
  const rules: { record: string; expr: string }[] = [];
  for (const p of dash.panels) {
    for (const t of p.targets ?? []) {
      rules.push({
        record: `dashboard:panel_${p.id}_${t.refId}`,
        expr: t.expr.replaceAll("$__rate_interval", "5m")
          .replace(/\$(host|vm)\b/g, ".*"),
      });
    }
  }
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
