/**
 * The bench's scrape phase runs (`scripts/bench/main.ts --quick
 * --only=scrape`: a real worker with sim VMs, its `/metrics` scraped) and
 * prints its rows and figures; the figures are not judged here.
 */
import assert from "node:assert/strict";
import { ROOT } from "./helpers/cluster.ts";

Deno.test("bench --only=scrape measures a worker's /metrics: time, size and CPU per scrape", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}scripts/bench/main.ts`,
      "--quick",
      "--only=scrape",
      "--no-write",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr).slice(-2000));
  assert.match(stdout, /worker \/metrics scrape, p50/);
  const json = JSON.parse(stdout.trim().split("\n").at(-1)!);
  assert.equal(json.scrape.vms, 5);
  assert.equal(json.scrape.ms.n, 5);
  assert.ok(json.scrape.bytes > 0 && json.scrape.series > 0);
  assert.ok(json.scrape.cpuMsPerScrape >= 0);
});
