/**
 * The frame of every web page: the document head (own CSS and scripts
 * only, no inline code: the CSP forbids it), a skip link, the navigation,
 * who is logged in and when the session ends, a logout button, and the
 * page's own content under its heading.
 *
 * @example
 * ```tsx
 * c.html(<Layout title="VMs" ctx={pageCtx(c)}><p>...</p></Layout>);
 * ```
 */
import type { Context } from "hono";
import { raw } from "hono/html";
import type { Child } from "hono/jsx";
import type { Principal } from "../env.ts";
import { Csrf } from "./form.tsx";
import type { WebEnv } from "./env.ts";

/** What the frame shows of the session; absent on the login page. */
export interface PageCtx {
  who: Principal;
  /** When the session ends (ISO). */
  expiresAt: string;
  csrf: string;
  /** The path of this page, to mark the current navigation entry. */
  path: string;
}

/** The frame's facts of a request behind the login. */
export function pageCtx(c: Context<WebEnv>): PageCtx {
  return {
    who: c.get("principal"),
    expiresAt: new Date(c.get("session").exp * 1000).toISOString(),
    csrf: c.get("csrf"),
    path: c.req.path,
  };
}

const NAV = [
  { href: "/web/vms", label: "VMs" },
  { href: "/web/networks", label: "Networks" },
  { href: "/web/keys", label: "SSH keys" },
  { href: "/web/images", label: "Images" },
  { href: "/web/tasks", label: "Tasks" },
];

/** The entries only admins see. */
const ADMIN_NAV = [
  { href: "/web/admin/hosts", label: "Hosts" },
  { href: "/web/admin/tasks", label: "All tasks" },
  { href: "/web/admin/users", label: "Users" },
];

/** `HH:MM UTC` of an ISO time. */
export function clock(iso: string): string {
  return `${iso.slice(11, 16)} UTC`;
}

function Session({ ctx }: { ctx: PageCtx }) {
  return (
    <div class="session">
      <p>
        Logged in as <strong>{ctx.who.name}</strong>
        {ctx.who.admin ? " (admin)" : ""}. Session ends at{" "}
        <time datetime={ctx.expiresAt} data-session-expires>
          {clock(ctx.expiresAt)}
        </time>
        <span data-session-left></span>.
      </p>
      <form method="post" action="/web/logout">
        <Csrf token={ctx.csrf} />
        <button type="submit" class="secondary">Log out</button>
      </form>
    </div>
  );
}

/** The page frame. `scripts` are asset names, loaded deferred. */
export function Layout(
  { title, ctx, children, scripts = [] }: {
    title: string;
    ctx?: PageCtx;
    children?: Child;
    scripts?: string[];
  },
) {
  const all = ctx ? ["session.js", "confirm.js", ...scripts] : scripts;
  return (
    <>
      {raw("<!DOCTYPE html>")}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <title>{`${title} · ucloud`}</title>
          <link rel="stylesheet" href="/web/assets/style.css" />
          {all.map((s) => (
            <script key={s} src={`/web/assets/${s}`} defer></script>
          ))}
        </head>
        <body>
          <a class="skip" href="#main">Skip to content</a>
          <header>
            <p class="brand">
              <a href="/web/vms">ucloud</a>
            </p>
            {ctx && (
              <nav aria-label="Main">
                <ul>
                  {[...NAV, ...ctx.who.admin ? ADMIN_NAV : []].map((n) => (
                    <li>
                      <a
                        href={n.href}
                        aria-current={ctx.path.startsWith(n.href)
                          ? "page"
                          : undefined}
                      >
                        {n.label}
                      </a>
                    </li>
                  ))}
                </ul>
              </nav>
            )}
            {ctx && <Session ctx={ctx} />}
          </header>
          <main id="main">
            <h1>{title}</h1>
            {children}
          </main>
        </body>
      </html>
    </>
  );
}
