/**
 * The security headers of every `/web/` answer: a content security policy
 * without `unsafe-inline` (scripts, styles, images and connections only
 * from ucloud itself; no framing; forms post only to ucloud), no MIME
 * sniffing, no referrer sent to other sites.
 *
 * @example
 * ```ts
 * web.use("*", securityHeaders());
 * ```
 */
import type { MiddlewareHandler } from "hono";

/** The content security policy of every web page. */
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

/** Sets the headers after the handler ran (also on errors and redirects). */
export function securityHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    c.res.headers.set("Content-Security-Policy", CSP);
    c.res.headers.set("X-Content-Type-Options", "nosniff");
    c.res.headers.set("Referrer-Policy", "same-origin");
    if (!c.res.headers.has("Cache-Control")) {
      c.res.headers.set("Cache-Control", "no-store");
    }
  };
}
