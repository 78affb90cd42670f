/**
 * The workload's HTTP client of the API process. A call ends in a reply
 * (any status) or an error (refused, reset, timed out). A 5xx or an error
 * is ambiguous: the change may or may not have been written (the API was
 * killed mid-request, or etcd timed out after committing), so the caller
 * reads the resource back with {@linkcode ApiClient.settle} until the API
 * gives a definite answer.
 *
 * @example
 * ```ts
 * const api = new ApiClient(env.api.url);
 * const r = await api.call("POST", `/v1/vms/${id}/stop`);
 * if (ambiguous(r)) {
 *   const vm = await api.settle(`/v1/vms/${id}`, 60_000); // 200 or 404
 * }
 * ```
 */

/** An HTTP answer. */
export interface Reply {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** An answer, or why there was none. */
export type Outcome = Reply | { error: string };

/** True when the outcome does not say whether the change was written. */
export function ambiguous(o: Outcome): boolean {
  return "error" in o || o.status >= 500;
}

/** The status, or `error` / the error text, for history lines. */
export function describe(o: Outcome): string {
  if ("error" in o) return `error (${o.error})`;
  const msg = o.status >= 400 ? o.body?.error?.message : undefined;
  return msg ? `${o.status} (${msg})` : String(o.status);
}

export class ApiClient {
  /**
   * `signal` (e.g. Ctrl-C) ends every {@linkcode ApiClient.settle} at once
   * with null.
   */
  constructor(
    readonly base: string,
    readonly opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ) {}

  /** One request; never throws. */
  async call(
    method: string,
    path: string,
    json?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Outcome> {
    try {
      const res = await fetch(`${this.base}${path}`, {
        method,
        headers: {
          ...(json === undefined ? {} : { "content-type": "application/json" }),
          ...headers,
        },
        body: json === undefined ? undefined : JSON.stringify(json),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5_000),
      });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch { /* not JSON */ }
      return { status: res.status, body };
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) };
    }
  }

  /**
   * Repeats `method path` until the answer is definite (below 500), at
   * most `maxMs`; null when there was none by then (or on the signal).
   */
  async settle(
    path: string,
    maxMs: number,
    method = "GET",
    json?: unknown,
    headers?: Record<string, string>,
  ): Promise<Reply | null> {
    const end = Date.now() + maxMs;
    while (true) {
      const r = await this.call(method, path, json, headers);
      if (!ambiguous(r)) return r as Reply;
      if (Date.now() > end || this.opts.signal?.aborted) return null;
      await new Promise((res) => setTimeout(res, 250));
    }
  }
}
