/**
 * The one place where errors become HTTP responses. Every error body has the
 * shape `{ error: { status, code, message, field? } }`; `field` names the
 * offending input (a dotted path, an unknown key, `body` for malformed JSON).
 *
 * @example
 * ```ts
 * const app = new OpenAPIHono({ defaultHook: validationHook });
 * app.onError(onError).notFound(notFound);
 * ```
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "@hono/zod-openapi";
import type { Hook } from "@hono/zod-openapi";
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
  NotFoundError,
  QuotaError,
  UnavailableError,
  UnreadableError,
} from "../core/errors.ts";
import { logger } from "../core/log.ts";
import type { AppEnv } from "./env.ts";

const log = logger({ component: "api" });

export const ErrorBody = z.object({
  error: z.object({
    status: z.number().int(),
    code: z.string(),
    message: z.string(),
    field: z.string().optional(),
    /** On a 403 over quota: the resource, used, requested and allowed. */
    quota: z.object({
      resource: z.string(),
      used: z.number().int(),
      requested: z.number().int(),
      allowed: z.number().int(),
    }).optional(),
  }),
}).openapi("Error");
export type ErrorBody = z.infer<typeof ErrorBody>;

type ErrorContent = { "application/json": { schema: typeof ErrorBody } };

/** OpenAPI response entries for the error statuses a route can return. */
export function errorResponses<S extends number>(
  ...statuses: S[]
): Record<S, { description: string; content: ErrorContent }> {
  const out = {} as Record<S, { description: string; content: ErrorContent }>;
  for (const s of statuses) {
    out[s] = {
      description: CODES[s] ?? "error",
      content: { "application/json": { schema: ErrorBody } },
    };
  }
  return out;
}
const CODES: Record<number, string> = {
  400: "invalid",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  415: "unsupported_media_type",
  416: "range_not_satisfiable",
  429: "too_many_requests",
  500: "internal",
  503: "unavailable",
};

/** Builds the JSON error response. */
export function errorJson(
  c: Context,
  status: ContentfulStatusCode,
  message: string,
  field?: string,
): Response {
  const body: ErrorBody = {
    error: {
      status,
      code: CODES[status] ?? "error",
      message,
      ...(field !== undefined ? { field } : {}),
    },
  };
  return c.json(body, status);
}

/** 429 with `Retry-After`: failed logins make this name or address wait. */
export function tooManyAttempts(c: Context, waitMs: number): Response {
  const seconds = Math.ceil(waitMs / 1000);
  c.header("Retry-After", String(seconds));
  return errorJson(c, 429, `Too many failed attempts: retry in ${seconds} s`);
}

/**
 * Names the field of a zod issue: the dotted path, the unknown key for
 * `unrecognized_keys`, or `body` for an issue on the whole body.
 */
export function issueField(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys" && issue.keys.length) {
    path.push(issue.keys[0]);
  }
  return path.length ? path.join(".") : "body";
}

function issueMessage(issue: z.core.$ZodIssue, field: string): string {
  if (issue.code === "unrecognized_keys") {
    const names = issue.keys.map((k) => `"${k}"`).join(", ");
    return `Unknown field${issue.keys.length > 1 ? "s" : ""} ${names}`;
  }
  // Custom messages of core/schemas.ts already start with the field name.
  return issue.message.startsWith(`${field} `)
    ? issue.message
    : `${field}: ${issue.message}`;
}

/** The message of a zod failure and its first offending field. */
export function zodProblem(
  error: z.ZodError,
): { message: string; field?: string } {
  const issues = error.issues;
  const fields = issues.map(issueField);
  const message = issues.map((i, n) => issueMessage(i, fields[n])).join("; ");
  return { message: message || "Invalid request", field: fields[0] };
}

/** Turns a zod failure into a 400 naming the first offending field. */
export function zodErrorJson(c: Context, error: z.ZodError): Response {
  const { message, field } = zodProblem(error);
  return errorJson(c, 400, message, field);
}

/** The validation hook of every route: a failed parse is a 400. */
export const validationHook: Hook<
  unknown,
  AppEnv,
  string,
  Response | undefined
> = (
  result,
  c,
) => {
  if (!result.success) return zodErrorJson(c, result.error);
};

/** Maps domain errors (core/errors.ts) and HTTP exceptions to JSON. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof NotFoundError) return errorJson(c, 404, err.message);
  if (err instanceof ConflictError) return errorJson(c, 409, err.message);
  if (err instanceof QuotaError) {
    const body: ErrorBody = {
      error: {
        status: 403,
        code: CODES[403],
        message: err.message,
        quota: err.quota,
      },
    };
    return c.json(body, 403);
  }
  if (err instanceof ForbiddenError) return errorJson(c, 403, err.message);
  if (err instanceof InvalidError) {
    return errorJson(c, 400, err.message, err.field);
  }
  if (err instanceof UnavailableError) {
    log.warn("dependency unavailable", { error: err.message });
    return errorJson(c, 503, err.message);
  }
  if (err instanceof UnreadableError) {
    // Reported by the store with the reason; the caller learns which key.
    return errorJson(
      c,
      500,
      `Cannot read document ${err.key}: it is corrupt or written by a newer ucloud`,
    );
  }
  if (err instanceof z.ZodError) return zodErrorJson(c, err);
  if (err instanceof HTTPException) {
    if (err.res) return err.getResponse();
    const status = err.status as ContentfulStatusCode;
    // hono's json validator throws this for a body that does not parse.
    const malformed = status === 400 && /JSON/.test(err.message);
    return errorJson(c, status, err.message, malformed ? "body" : undefined);
  }
  log.error("request failed", {
    method: c.req.method,
    path: c.req.path,
    error: err.message,
    stack: err.stack,
  });
  return errorJson(c, 500, "Internal server error");
}

/** The JSON 404 for a path no route matches. */
export function notFound(c: Context): Response {
  return errorJson(c, 404, `No route ${c.req.method} ${c.req.path}`);
}
