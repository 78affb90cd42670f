/**
 * Reading a real Prometheus in tests through its HTTP API: instant
 * queries, active targets and alerts; running promtool; and a fixture
 * `/metrics` endpoint serving a fixed exposition (standing in for a
 * worker's until it serves its own), which records the Authorization
 * headers it got.
 *
 * @example
 * ```ts
 * const up = await query(prom.url, 'up{job="ucloud-api"}');
 * const fixture = serveExposition("ucloud_fixture_up 1\n");
 * await fixture.close();
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

/** A fixture `/metrics` on a loopback port (see the module comment). */
export interface ExpositionServer {
  url: string;
  /** The Authorization headers of the requests so far. */
  authorizations: (string | null)[];
  close(): Promise<void>;
}

/** Serves `text` as a Prometheus exposition at `/metrics` on loopback. */
export function serveExposition(text: string): ExpositionServer {
  const authorizations: (string | null)[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      authorizations.push(req.headers.get("authorization"));
      if (new URL(req.url).pathname !== "/metrics") {
        return new Response("not found", { status: 404 });
      }
      return new Response(text, {
        headers: { "content-type": "text/plain; version=0.0.4" },
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/metrics`,
    authorizations,
    close: () => server.shutdown(),
  };
}
