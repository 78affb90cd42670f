/**
 * `POST /v1/vms/{id}/console`: a console ticket for a running VM the caller
 * may see (resources/console/tickets.ts), bound to the caller, the VM and
 * the session or token of this request. The answer's `url` opens the
 * console page (api/console_page.ts) with the ticket in its fragment, which
 * browsers never send to a server.
 *
 * A ticket made with the web session needs that session (the cookie) on
 * the websocket; one made with a bearer token or TOTP (the CLI) is itself
 * the credential of its one use within `console.ticketTtlSeconds`, so the
 * URL works in a browser that is not logged in; the console then ends with
 * the bearer token (revoked or expired), or after `console.maxSeconds`.
 *
 * @example
 * ```ts
 * app.route("/v1/vms", consoleTickets({ store, config }));
 * // POST /v1/vms/vm-1/console -> 201 { ticket, url, expiresAt }
 * ```
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ConsoleConfig } from "../core/config_console.ts";
import { SlidingWindow } from "../core/rate_limit.ts";
import type { Store } from "../core/store.ts";
import { issueTicket, type TicketBinding } from "../resources/console/mod.ts";
import { authMethod, currentToken } from "./auth.ts";
import { IdParams, router } from "./env.ts";
import { errorJson, errorResponses } from "./errors.ts";

/**
 * Tickets one person (the admin when acting for a user) may ask for per
 * minute on one API replica: each is an etcd write, so the rate is bounded.
 */
export const TICKETS_PER_MINUTE = 20;

const ConsoleTicketDoc = z.object({
  ticket: z.string().openapi({
    description: "The secret: 43 base64url characters, used once",
  }),
  url: z.string().openapi({
    description: "The console page with the ticket in its fragment",
    example: "https://ucloud.example/web/console/vm-1#ticket=...",
  }),
  expiresAt: z.string().openapi({
    description: "The ticket is refused after this time",
  }),
}).openapi("ConsoleTicket");

export const consoleRoute = createRoute({
  method: "post",
  path: "/{id}/console",
  summary: "Make a console ticket for a running VM",
  description:
    "A single-use ticket for the VM's screen (VNC over a websocket at " +
    "`/web/console/{id}/ws?ticket=...`), valid for 30 seconds " +
    "(`console.ticketTtlSeconds`), bound to the caller, the VM and the " +
    "session or token of this request. `url` opens the console page.",
  request: { params: IdParams },
  responses: {
    201: {
      description: "A ticket",
      content: { "application/json": { schema: ConsoleTicketDoc } },
    },
    ...errorResponses(400, 404, 409, 429, 503),
  },
});

/** The page that shows VM `vm`'s console with `ticket`. */
export function consoleUrl(origin: string, vm: string, ticket: string): string {
  return new URL(`/web/console/${vm}#ticket=${ticket}`, origin).href;
}

/** The console ticket route (mounted at `/v1/vms`). */
export function consoleTickets(
  { store, console: cfg }: { store: Store; console: ConsoleConfig },
) {
  const app = router();
  const asked = new SlidingWindow({
    limit: TICKETS_PER_MINUTE,
    windowMs: 60_000,
    maxKeys: 10_000,
    now: () => performance.now(),
  });
  app.openapi(consoleRoute, async (c) => {
    const { id } = c.req.valid("param");
    const who = c.get("principal");
    const wait = asked.retryAfterMs(who.actor ?? who.name);
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      c.header("Retry-After", String(seconds));
      return errorJson(
        c,
        429,
        `Too many console tickets: retry in ${seconds} s`,
      ) as never;
    }
    asked.fail(who.actor ?? who.name);
    const method = authMethod(c);
    const token = currentToken(c);
    const binding: TicketBinding = method === "session" || method === "bearer"
      ? {
        via: method,
        tokenId: token?.jti,
        tokenExpiresAt: token ? new Date(token.exp * 1000) : undefined,
      }
      : { via: method ?? "none" };
    const t = await issueTicket(
      { store, console: cfg },
      c.get("principal"),
      id,
      binding,
    );
    return c.json({
      ticket: t.ticket,
      url: consoleUrl(c.req.url, id, t.ticket),
      expiresAt: t.expiresAt,
    }, 201);
  });
  return app;
}
