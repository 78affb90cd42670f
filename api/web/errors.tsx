/**
 * The error pages of `/web/`: what a resource module throws becomes the
 * API's status with its message (api/web/form.tsx `problemOf`), anything
 * else a 500 page with nothing of the cause (logged instead). A VM that
 * the user may not see is a plain 404, as in the API.
 *
 * @example
 * ```ts
 * web.onError(webError(log)).notFound(webNotFound);
 * ```
 */
import type { Context, ErrorHandler } from "hono";
import type { Logger } from "../../core/log.ts";
import type { WebEnv } from "./env.ts";
import { ErrorBanner, type Problem, problemOf } from "./form.tsx";
import { Layout, pageCtx } from "./layout.tsx";

const TITLES: Record<number, string> = {
  400: "Invalid request",
  401: "Log in",
  429: "Too many attempts",
  403: "Not allowed",
  404: "Not found",
  409: "Conflict",
  500: "Something went wrong",
  503: "Unavailable",
};

/** The frame's session facts, when the request got past the login. */
function ctxOf(c: Context<WebEnv>) {
  return c.get("session") && c.get("csrf") ? pageCtx(c) : undefined;
}

/** An error page of `status` saying `message`. */
export function errorPage(
  c: Context<WebEnv>,
  status: Problem["status"] | 500,
  message: string,
) {
  return c.html(
    <Layout title={TITLES[status]} ctx={ctxOf(c)}>
      <ErrorBanner problem={{ status: 400, message }} />
      <p>
        <a href="/web/vms">Back to your VMs</a>
      </p>
    </Layout>,
    status,
  );
}

/** The `onError` of the web app. */
export function webError(log: Logger): ErrorHandler<WebEnv> {
  return (err, c) => {
    const p = problemOf(err);
    if (p) return errorPage(c, p.status, p.message);
    log.error("web page failed", {
      method: c.req.method,
      path: c.req.path,
      error: err.message,
      stack: err.stack,
    });
    return errorPage(c, 500, "Internal error: it has been logged.");
  };
}

/** The 404 page of a path no page has. */
export function webNotFound(c: Context<WebEnv>) {
  return errorPage(c, 404, `There is no page ${c.req.path}.`);
}
