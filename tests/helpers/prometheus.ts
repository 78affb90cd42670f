/**
 * Reading a real Prometheus in tests through its HTTP API: instant
 * queries, active targets and alerts; and running promtool.
 *
 * @example
 * ```ts
 * const up = await query(prom.url, 'up{job="ucloud-api"}');
 * const lint = await promtool(["check", "metrics"], text);
 * ```
 */

/** One series of an instant query: its labels and value. */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

async function api<T>(url: string, path: string): Promise<T> {
  const res = await fetch(`${url}${path}`, {
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.json();
  if (body.status !== "success") {
    throw new Error(`Prometheus ${path}: ${JSON.stringify(body)}`);
  }
  return body.data as T;
}

/** The result of the instant query `q`. */
export async function query(url: string, q: string): Promise<Sample[]> {
  const data = await api<
    { result: { metric: Record<string, string>; value: [number, string] }[] }
  >(url, `/api/v1/query?query=${encodeURIComponent(q)}`);
  return data.result.map((r) => ({
    metric: r.metric,
    value: Number(r.value[1]),
  }));
}

/** An active scrape target: its labels and health. */
export interface ActiveTarget {
  labels: Record<string, string>;
  health: "up" | "down" | "unknown";
  scrapeUrl: string;
  lastError: string;
}

/** The targets Prometheus scrapes now (after relabelling). */
export async function activeTargets(url: string): Promise<ActiveTarget[]> {
  const data = await api<{ activeTargets: ActiveTarget[] }>(
    url,
    "/api/v1/targets?state=active",
  );
  return data.activeTargets;
}

/** An alert Prometheus holds: pending or firing. */
export interface Alert {
  labels: Record<string, string>;
  state: "pending" | "firing";
}

/** Every pending and firing alert. */
export async function alerts(url: string): Promise<Alert[]> {
  return (await api<{ alerts: Alert[] }>(url, "/api/v1/alerts")).alerts;
}

/** Runs promtool (with `stdin` as its input); its exit code and output. */
export async function promtool(
  args: string[],
  stdin?: string,
): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    output: dec.decode(out.stdout) + dec.decode(out.stderr),
  };
}
