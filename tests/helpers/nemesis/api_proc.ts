/**
 * The API as a child process (`api/main.ts` on a loopback port), so the
 * nemesis can SIGKILL it and start it again on the same port. Its stderr
 * (JSON log lines) goes to `logFile`.
 *
 * @example
 * ```ts
 * const api = new ApiProc({ env: cluster.env, logFile: `${dir}/api.log` });
 * await api.start();
 * await fetch(`${api.url}/healthz`);
 * await api.kill();
 * ```
 */
import { freePort } from "../../../core/etcd_server.ts";
import { ROOT } from "../cluster.ts";

export interface ApiProcOptions {
  /** The cluster's environment (UCLOUD_ETCD, UCLOUD_PREFIX, ...). */
  env: Record<string, string>;
  logFile: string;
  /** Loopback port; default: a free one, kept across restarts. */
  port?: number;
}

export class ApiProc {
  readonly port: number;
  readonly url: string;
  #child?: Deno.ChildProcess;

  constructor(readonly opts: ApiProcOptions) {
    this.port = opts.port ?? freePort();
    this.url = `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The running process's exit status (undefined when none runs). */
  get exited(): Promise<Deno.CommandStatus> | undefined {
    return this.#child?.status;
  }

  /** Starts the process and waits (at most 30 s) until it answers HTTP. */
  async start(): Promise<void> {
    if (this.#child) throw new Error("Cannot start the API: it runs already");
    this.#child = new Deno.Command("bash", {
      args: [
        "-c",
        'exec "$0" run -A "$1" 2>>"$2"',
        Deno.execPath(),
        `${ROOT}api/main.ts`,
        this.opts.logFile,
      ],
      env: {
        ...this.opts.env,
        UCLOUD_API_LISTEN: "127.0.0.1",
        UCLOUD_API_PORT: String(this.port),
      },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const child = this.#child;
    let exited = false;
    child.status.then(() => exited = true);
    const end = Date.now() + 30_000;
    while (Date.now() < end && !exited) {
      try {
        // Any answer will do (503 while etcd is down): the port is served.
        const res = await fetch(`${this.url}/healthz`, {
          signal: AbortSignal.timeout(1000),
        });
        await res.body?.cancel();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await this.kill();
    throw new Error(
      `Cannot start the API on ${this.url}: ${
        exited ? "it exited" : "no answer in 30 s"
      } (log ${this.opts.logFile})`,
    );
  }

  /** Sends `signal` and waits for the exit. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    const child = this.#child;
    if (!child) return;
    try {
      child.kill(signal);
    } catch { /* gone */ }
    await child.status;
    this.#child = undefined;
  }
}
