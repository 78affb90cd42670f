/**
 * The CLI's HTTP transport: one JSON request to the API with the session's
 * bearer token (bought again once when the API refuses it), the API's
 * error answers as `ApiError`, and an unreachable API as a `CliError` that
 * says how to start one. `client.ts` builds the typed calls on it.
 *
 * @module
 */
import { ApiError, CliError } from "./errors.ts";

/** Options of one request: a JSON body or raw bytes, and extra headers. */
export interface RequestInit {
  body?: unknown;
  /** Bytes sent as `application/octet-stream` (an image chunk). */
  raw?: Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
}

/** Sends one request and answers its JSON body, typed by the caller. */
export type Transport = <T>(
  method: string,
  path: string,
  init?: RequestInit,
) => Promise<T>;

/** What authenticates requests (`Session` in session.ts). */
export interface Auth {
  /** Headers for a request; `fresh`: the cached token was refused. */
  headers(fresh?: boolean): Promise<Record<string, string>>;
}

/**
 * A transport to the API at `base`, authenticated by `auth` when given.
 *
 * @example
 * ```ts
 * const send = connect("http://127.0.0.1:8750", fetch);
 * const me = await send<{ name: string }>("GET", "/v1/auth/whoami");
 * ```
 */
export function connect(
  base: string,
  fetchFn: typeof globalThis.fetch,
  auth?: Auth,
): Transport {
  return async <T>(
    method: string,
    path: string,
    init: RequestInit = {},
  ): Promise<T> => {
    const send = async (authHeaders: Record<string, string>) => {
      try {
        return await fetchFn(`${base}${path}`, {
          method,
          headers: {
            accept: "application/json",
            ...(init.raw !== undefined
              ? { "content-type": "application/octet-stream" }
              : init.body === undefined
              ? {}
              : { "content-type": "application/json" }),
            ...authHeaders,
            ...init.headers,
          },
          body: init.raw ??
            (init.body === undefined ? undefined : JSON.stringify(init.body)),
        });
      } catch (err) {
        const why = networkReason(err);
        throw new CliError(
          `the ucloud API is not reachable at ${base} (${why}). ` +
            "Start it with 'deno task up', or point --api or UCLOUD_API at " +
            "a running API.",
        );
      }
    };
    const headers = auth ? await auth.headers() : {};
    let response = await send(headers);
    if (response.status === 401 && auth && headers.authorization) {
      // The cached bearer token was revoked or the API's key changed.
      await response.body?.cancel();
      response = await send(await auth.headers(true));
    }
    const text = await response.text();
    let data: unknown;
    try {
      data = text === "" ? undefined : JSON.parse(text);
    } catch {
      data = undefined;
    }
    if (!response.ok) {
      const err = apiError(response, data, text);
      if (response.status === 401 && auth && !headers.authorization) {
        throw new ApiError(
          err.status,
          err.code,
          `${err.message} (run 'ucloud login' first)`,
          err.field,
        );
      }
      throw err;
    }
    if (data === undefined) {
      throw new CliError(
        `the API answered ${method} ${path} with ${response.status} ` +
          "but without a JSON body",
      );
    }
    return data as T;
  };
}

/** "connection refused", else the innermost message of a fetch failure. */
function networkReason(err: unknown): string {
  let reason = String(err);
  for (let e = err; e instanceof Error; e = e.cause) {
    if (/connection refused/i.test(e.message)) return "connection refused";
    reason = e.message;
  }
  return reason;
}

function apiError(response: Response, data: unknown, text: string): ApiError {
  const error = (data as { error?: Record<string, unknown> } | undefined)
    ?.error;
  if (error && typeof error.message === "string") {
    return new ApiError(
      response.status,
      String(error.code ?? ""),
      error.message,
      typeof error.field === "string" ? error.field : undefined,
    );
  }
  const body = text.trim().slice(0, 200);
  return new ApiError(
    response.status,
    "",
    `the API answered ${response.status} ${response.statusText}` +
      (body ? `: ${body}` : ""),
  );
}
