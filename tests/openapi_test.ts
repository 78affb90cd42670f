/**
 * The API's OpenAPI document against the app that serves it: every route
 * the Hono app answers (without identity and with it) is a path of the
 * document, and an answer that can hold no task says `task` may be null
 * while a Task itself never is.
 */
import assert from "node:assert/strict";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { createApp } from "../api/app.ts";
import type { AppEnv } from "../api/env.ts";
import type { Store } from "../core/store.ts";
import { documentedApp } from "../scripts/cli_types.ts";

/** Served outside the API's document: operations and the document itself. */
const UNDOCUMENTED = ["/healthz", "/metrics", "/v1/openapi.json"];
/** The web pages (api/web/): HTML for browsers, not API operations. */
const WEB_PAGES = /^\/web(\/|$)/;

/** `METHOD /path/{param}` of every route the app answers. */
function servedRoutes(app: OpenAPIHono<AppEnv>): string[] {
  const served = new Set<string>();
  for (const { method, path } of app.routes) {
    // `app.use()` middleware is listed as ALL (on a wildcard path, or on
    // the one path it guards, e.g. /v1/monitoring/targets).
    if (method === "ALL") continue;
    if (UNDOCUMENTED.includes(path) || WEB_PAGES.test(path)) continue;
    served.add(`${method} ${path.replace(/:(\w+)/g, "{$1}")}`);
  }
  return [...served].sort();
}

type Doc = {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, Record<string, unknown>> };
};

async function documentOf(app: OpenAPIHono<AppEnv>): Promise<Doc> {
  const res = await app.request("/v1/openapi.json");
  assert.equal(res.status, 200);
  return await res.json();
}

/** `METHOD /path` of every operation of the document. */
function documented(doc: Doc): string[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`)
  ).sort();
}

Deno.test("every route the app serves is a path of its OpenAPI document, without identity and with it", async () => {
  // The document route reads no store.
  const plain = createApp({ store: {} as Store });
  const full = await documentedApp();
  for (const app of [plain, full]) {
    const doc = await documentOf(app);
    const missing = servedRoutes(app).filter((r) =>
      !documented(doc).includes(r)
    );
    assert.deepEqual(missing, [], "served but not in the OpenAPI document");
  }
  const auth = documented(await documentOf(full)).filter((r) =>
    r.includes("/v1/auth/")
  );
  assert.deepEqual(auth, [
    "DELETE /v1/auth/session",
    "GET /v1/auth/seed/{name}",
    "GET /v1/auth/whoami",
    "POST /v1/auth/revoke",
    "POST /v1/auth/seed",
    "POST /v1/auth/services",
    "POST /v1/auth/session",
    "POST /v1/auth/token",
  ]);
});

/** Whether the JSON schema `s` (3.1: `type` lists, `anyOf`) admits null. */
function admitsNull(s: Record<string, unknown>, doc: Doc): boolean {
  if (typeof s.$ref === "string") {
    const name = s.$ref.replace("#/components/schemas/", "");
    return admitsNull(doc.components.schemas[name], doc);
  }
  if (s.nullable === true || s.type === "null") return true;
  if (Array.isArray(s.type) && s.type.includes("null")) return true;
  const alts = (s.anyOf ?? s.oneOf) as Record<string, unknown>[] | undefined;
  return alts?.some((a) => admitsNull(a, doc)) ?? false;
}

Deno.test("GET /v1/openapi.json says which answers may hold no task, and a Task is never null", async () => {
  const doc = await documentOf(createApp({ store: {} as Store }));
  assert.equal(admitsNull(doc.components.schemas.Task, doc), false);
  const taskOf = (path: string, method: string, status: string) => {
    const op = doc.paths[path][method] as {
      responses: Record<string, { content: Record<string, unknown> }>;
    };
    const body = op.responses[status].content["application/json"] as {
      schema: Record<string, unknown>;
    };
    let schema = body.schema;
    if (typeof schema.$ref === "string") {
      schema = doc.components.schemas[schema.$ref.split("/").pop()!];
    }
    const props = schema.properties as Record<string, Record<string, unknown>>;
    return admitsNull(props.task, doc);
  };
  const maybe = [
    ["/v1/vms", "post", "200"],
    ["/v1/vms/{id}", "delete", "200"],
    ["/v1/vms/{id}", "delete", "202"],
    ["/v1/vms/{id}/start", "post", "200"],
    ["/v1/vms/{id}/stop", "post", "200"],
    ["/v1/vms/{id}/stop", "post", "202"],
    ["/v1/vms/{id}/reboot", "post", "202"],
    ["/v1/vms/{id}/nics", "post", "202"],
    ["/v1/vms/{id}/nics/{slot}", "delete", "200"],
    ["/v1/vms/{id}/nics/{slot}", "delete", "202"],
    ["/v1/hosts/{name}/drain", "post", "200"],
    ["/v1/hosts/{name}/shutdown", "post", "200"],
    ["/v1/hosts/{name}/enable", "post", "200"],
  ];
  for (const [path, method, status] of maybe) {
    assert.equal(
      taskOf(path, method, status),
      true,
      `${method} ${path} ${status}`,
    );
  }
  const always = [
    ["/v1/vms", "post", "201"],
    ["/v1/hosts/{name}/drain", "post", "202"],
    ["/v1/hosts/{name}/shutdown", "post", "202"],
  ];
  for (const [path, method, status] of always) {
    assert.equal(
      taskOf(path, method, status),
      false,
      `${method} ${path} ${status}`,
    );
  }
});

Deno.test("HostView documents a host's allocation ratios, memory reserve and effective capacity", async () => {
  const doc = await documentOf(createApp({ store: {} as Store }));
  const view = doc.components.schemas.HostView as {
    required: string[];
    properties: Record<string, { description?: string; properties?: object }>;
  };
  for (const p of ["allocation", "effective"]) {
    assert.ok(view.required.includes(p), p);
    assert.ok(view.properties[p].description, `${p} has a description`);
  }
  assert.deepEqual(Object.keys(view.properties.allocation.properties!), [
    "cpuRatio",
    "memoryRatio",
    "reservedMemoryMiB",
  ]);
  assert.match(view.properties.effective.description!, /cpus × cpuRatio/);
});
