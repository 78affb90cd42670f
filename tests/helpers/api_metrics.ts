/**
 * Reading the API's `/metrics` in tests: `scrape()` an app from loopback
 * (the default `api.metrics.allow`), `sample()` one series' value out of
 * the text, and `promtoolCheck()` the text with Debian's promtool (its
 * exposition lint: names, units, `_total`, help texts).
 */
import assert from "node:assert/strict";
import type { App } from "./api.ts";

/** The text of `GET /metrics` of `app`, asked from 127.0.0.1. */
export async function scrape(app: App): Promise<string> {
  const res = await app.request("/metrics", {}, {
    remoteAddr: { hostname: "127.0.0.1" },
  });
  assert.equal(res.status, 200);
  return await res.text();
}

/**
 * The value of the series written exactly as `series` (name and labels in
 * the order prom-client writes them), or undefined when it is absent.
 */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) {
      return Number(line.slice(series.length + 1));
    }
  }
  return undefined;
}

/** Asserts that `promtool check metrics` finds nothing to say about `text`. */
export async function promtoolCheck(text: string): Promise<void> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  const said = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  assert.ok(out.success && said.trim() === "", `promtool: ${said}`);
}
