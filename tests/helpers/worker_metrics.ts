/**
 * Reading a worker's `/metrics` in tests: its URL from the host document,
 * a scrape (optionally from another loopback address, through curl's
 * `--interface`), the text parsed into series, and `promtool check
 * metrics` (Debian's prometheus package) on it.
 *
 * @example
 * ```ts
 * const url = await metricsUrl(c.store, "h1");
 * const s = series(await scrapeText(url));
 * value(s, "ucloud_vm_cpu_time_seconds_total", { vm: "vm-1" });
 * ```
 */
import { keys } from "../../core/keys.ts";
import { Host } from "../../core/schemas.ts";
import type { Store } from "../../core/store.ts";
import { run } from "../../drivers/runner.ts";
import { waitFor } from "./cluster.ts";

/** One series: name, labels, value. */
export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Waits until host `host` announces its metrics URL; returns it. */
export async function metricsUrl(
  store: Store,
  host: string,
  timeoutMs = 30_000,
): Promise<string> {
  return await waitFor(
    `${host} announces /metrics`,
    async () => {
      const h = await store.get(keys.host(host), Host);
      return h?.value.metrics?.url;
    },
    timeoutMs,
    100,
  );
}

/**
 * GETs `url` with curl (from `from` when given: a local address to send
 * from); returns the status and body.
 */
export async function scrape(
  url: string,
  opts: { from?: string; token?: string } = {},
): Promise<{ status: number; text: string }> {
  const args = ["-sS", "-g", "-o", "-", "-w", "\n%{http_code}", url];
  if (opts.from) args.unshift("--interface", opts.from);
  if (opts.token) args.unshift("-H", `Authorization: Bearer ${opts.token}`);
  const { stdout } = await run("curl", args, { timeoutMs: 30_000 });
  const at = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(at + 1)), text: stdout.slice(0, at) };
}

/** Parses the Prometheus text format (no escapes in label values). */
export function series(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`Not a series line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)) {
      labels[l[1]] = l[2];
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The series of `name` whose labels include `labels`. */
export function pick(
  all: Series[],
  name: string,
  labels: Record<string, string> = {},
): Series[] {
  return all.filter((s) =>
    s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
}

/** The value of the one series `name` with `labels`; throws unless one. */
export function value(
  all: Series[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const found = pick(all, name, labels);
  if (found.length !== 1) {
    throw new Error(
      `${found.length} series ${name} ${JSON.stringify(labels)}: ${
        JSON.stringify(found)
      }`,
    );
  }
  return found[0].value;
}

/** Runs `promtool check metrics` on `text`; its complaints ("" when none). */
export async function promtoolCheck(text: string): Promise<string> {
  const p = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await p.output();
  const said = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  return out.success ? said.trim() : `failed: ${said}`;
}
