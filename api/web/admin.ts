/**
 * The admin pages under `/web/admin/`: hosts (api/web/admin_hosts.tsx),
 * everyone's tasks (admin_tasks.tsx) and users with their quotas
 * (admin_users.tsx). A non-admin gets the 403 page for every one of them,
 * GET or POST, before any handler runs; the resource functions the pages
 * call check again.
 *
 * @example
 * ```ts
 * web.route("/admin", adminPages(w));
 * ```
 */
import { Hono } from "hono";
import type { WebDeps, WebEnv } from "./env.ts";
import { errorPage } from "./errors.tsx";
import { hostPages } from "./admin_hosts.tsx";
import { allTasksPage } from "./admin_tasks.tsx";
import { userPages } from "./admin_users.tsx";

/** The admin pages. */
export function adminPages(w: WebDeps): Hono<WebEnv> {
  return new Hono<WebEnv>()
    .use("*", async (c, next) => {
      if (!c.get("principal").admin) {
        return errorPage(c, 403, "Only admins may open this page.");
      }
      return await next();
    })
    .route("/", hostPages(w))
    .get("/tasks", allTasksPage(w))
    .route("/users", userPages(w));
}
