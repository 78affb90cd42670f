/**
 * Runs Debian's `prometheus` for a cloud with its files in one directory:
 * `prometheus.yml` (the configuration handed in), `data/` (the TSDB),
 * `prometheus.log`, and `prometheus.pid` (`{ pid, url }`). A Prometheus
 * that still runs from the same directory (a previous `up` that was
 * killed) is adopted: it gets the new configuration (`POST /-/reload`)
 * instead of a second process, and `stop()` ends it all the same.
 *
 * @example
 * ```ts
 * const p = await startPrometheus({ dir: `${stateDir}/prometheus`, config, port: 9090 });
 * console.log(p.url);
 * await p.stop();
 * ```
 */
import { freePort } from "../core/etcd_server.ts";

export interface PrometheusOptions {
  /** Where its configuration, data, log and pid file live. */
  dir: string;
  /** The configuration text (scripts/prometheus_config.ts). */
  config: string;
  /** The address it listens on; default loopback. */
  listen?: string;
  /** Its port; default a free one. */
  port?: number;
  binary?: string;
  /** How long it may take to become ready. */
  readyTimeoutMs?: number;
}

export interface PrometheusServer {
  /** `http://<listen>:<port>`. */
  url: string;
  pid: number;
  /** It ran already (from the same directory) and was reconfigured. */
  adopted: boolean;
  /** SIGTERM, SIGKILL after 10 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function ready(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/-/ready`, {
      signal: AbortSignal.timeout(1000),
    });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

function server(
  dir: string,
  url: string,
  pid: number,
  adopted: boolean,
  exited: () => boolean,
): PrometheusServer {
  const stop = async () => {
    const kill = (s: Deno.Signal) => {
      try {
        Deno.kill(pid, s);
      } catch { /* gone */ }
    };
    if (exited()) return;
    kill("SIGTERM");
    const end = Date.now() + 10_000;
    while (!exited()) {
      if (Date.now() > end) kill("SIGKILL");
      await sleep(50);
    }
    await Deno.remove(`${dir}/prometheus.pid`).catch(() => {});
  };
  return { url, pid, adopted, stop };
}

/**
 * The Prometheus of `dir` still running, reconfigured with `config`, or
 * null when none runs (or it is not ours: another command line).
 */
async function adopt(
  dir: string,
  configFile: string,
): Promise<PrometheusServer | null> {
  let rec: { pid: number; url: string };
  try {
    rec = JSON.parse(await Deno.readTextFile(`${dir}/prometheus.pid`));
  } catch {
    return null;
  }
  const cmdline = await Deno.readTextFile(`/proc/${rec.pid}/cmdline`)
    .catch(() => "");
  if (!cmdline.split("\0").includes(`--config.file=${configFile}`)) {
    return null;
  }
  if (!(await ready(rec.url))) return null;
  const res = await fetch(`${rec.url}/-/reload`, { method: "POST" });
  const body = await res.text();
  if (!res.ok) throw new Error(`Cannot reload Prometheus: ${body}`);
  return server(dir, rec.url, rec.pid, true, () => !alive(rec.pid));
}

/** Starts (or adopts) the Prometheus of `opts.dir`; see the module comment. */
export async function startPrometheus(
  opts: PrometheusOptions,
): Promise<PrometheusServer> {
  const { dir, listen = "127.0.0.1", binary = "prometheus" } = opts;
  await Deno.mkdir(`${dir}/data`, { recursive: true });
  const configFile = `${dir}/prometheus.yml`;
  await Deno.writeTextFile(configFile, opts.config);
  const running = await adopt(dir, configFile);
  if (running) return running;
  const port = opts.port ?? freePort();
  const url = `http://${listen.includes(":") ? `[${listen}]` : listen}:${port}`;
  const logFile = `${dir}/prometheus.log`;
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      'exec "$0" "${@:2}" 2>>"$1"',
      binary,
      logFile,
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=${
        listen.includes(":") ? `[${listen}]` : listen
      }:${port}`,
      "--web.enable-lifecycle",
      "--log.format=json",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let done = false;
  child.status.then(() => done = true);
  const proc = server(dir, url, child.pid, false, () => done);
  const end = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  while (!(await ready(url))) {
    if (done || Date.now() > end) {
      await proc.stop();
      const tail = (await Deno.readTextFile(logFile).catch(() => ""))
        .trim().split("\n").slice(-5).join("\n");
      throw new Error(`Cannot start Prometheus on ${url}: ${tail}`);
    }
    await sleep(100);
  }
  await Deno.writeTextFile(
    `${dir}/prometheus.pid`,
    JSON.stringify({ pid: child.pid, url }) + "\n",
  );
  return proc;
}
