/**
 * What the web pages share: their Hono environment (the principal and the
 * session claims set by `webSession`, the CSRF token of the session set by
 * `csrf`) and the dependencies every page module is built from.
 *
 * @example
 * ```ts
 * const app = new Hono<WebEnv>();
 * app.get("/vms", (c) => c.html(<p>{c.get("principal").name}</p>));
 * ```
 */
import type { Principal } from "../env.ts";
import type { ResourceDeps } from "../../resources/deps.ts";
import type { WebAuth } from "../session_login.ts";
import type { BearerClaims } from "../tokens.ts";
import type { Logger } from "../../core/log.ts";

/** The request variables of a page behind the login. */
export type WebEnv = {
  Variables: {
    principal: Principal;
    /** The claims of the session cookie (its expiry for the layout). */
    session: BearerClaims;
    /** The CSRF token every form of this session carries. */
    csrf: string;
  };
};

/** What the page modules are built from. */
export interface WebDeps {
  /** The same deps as the API's resource sub-apps. */
  deps: ResourceDeps;
  auth: WebAuth;
  log: Logger;
}
