/**
 * Shared pieces of the in-process API tests: `call()` an app without a
 * port, `dump()` etcd to compare before and after a rejected request,
 * `assertError()` on the error body, and `headerAuth` (X-User: name or
 * name/admin) for the auth slot.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv, createApp } from "../../api/app.ts";
import type { Store } from "../../core/store.ts";

export const noSanitize = { sanitizeOps: false, sanitizeResources: false };

export type App = ReturnType<typeof createApp>;

export interface Reply {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
}

export interface CallInit {
  json?: unknown;
  body?: string;
  headers?: Record<string, string>;
}

export async function call(
  app: App,
  method: string,
  path: string,
  init: CallInit = {},
): Promise<Reply> {
  const headers = new Headers(init.headers);
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    if (!headers.has("content-type")) {
      headers.set("content-type", "application/json");
    }
  }
  const res = await app.request(path, { method, headers, body });
  const type = res.headers.get("content-type") ?? "";
  return {
    status: res.status,
    headers: res.headers,
    body: type.includes("json") ? await res.json() : await res.text(),
  };
}

/** Every key under the store's prefix with value and mod revision. */
export async function dump(store: Store) {
  const { items, revision } = await store.list("", z.unknown());
  return {
    revision,
    kvs: items.map((kv) => ({
      key: kv.key,
      value: kv.value,
      modRevision: kv.modRevision,
    })),
  };
}

export function assertError(
  r: Reply,
  status: number,
  field: string | undefined,
  message?: RegExp,
) {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error.status, status);
  assert.equal(typeof r.body.error.code, "string");
  assert.equal(r.body.error.field, field);
  if (message) assert.match(r.body.error.message, message);
}

/** Test seam for the auth slot: `X-User: name` or `X-User: name/admin`. */
export const headerAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const user = c.req.header("x-user");
  if (!user) throw new HTTPException(401, { message: "No X-User header" });
  const [name, role] = user.split("/");
  c.set("principal", { name, admin: role === "admin" });
  await next();
};
