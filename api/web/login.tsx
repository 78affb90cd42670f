/**
 * `/web/login` and `/web/logout`. The login form takes the LDAP password
 * and a TOTP token and opens the same web session as `POST
 * /v1/auth/session` (api/session_login.ts: one implementation, one
 * failure limiter); a refused login says only that name, password or
 * token is wrong. Logout revokes the session and clears its cookie.
 *
 * @example
 * ```ts
 * web.route("/login", loginPages(w));
 * pages.post("/logout", logout(w));
 * ```
 */
import { type Context, Hono } from "hono";
import type { Handler } from "hono";
import { NAME_RE } from "../../core/totp.ts";
import { clearSessionCookie, setSessionCookie } from "../session_login.ts";
import { loginToken, loginTokenOk, refuseCsrf } from "./csrf.ts";
import type { WebDeps, WebEnv } from "./env.ts";
import {
  Csrf,
  ErrorBanner,
  Field,
  Notice,
  type Problem,
  textOf,
} from "./form.tsx";
import { Layout } from "./layout.tsx";
import { NEXT_RE } from "./session.ts";

/** What the login page says after a redirect to it. */
const MESSAGES: Record<string, string> = {
  expired: "Your session has ended. Log in again to continue.",
  out: "You are logged out.",
};

function LoginPage(
  { csrf, name = "", next, problem, message }: {
    csrf: string;
    name?: string;
    next?: string;
    problem?: Problem;
    message?: string;
  },
) {
  return (
    <Layout title="Log in">
      <Notice text={message} />
      <ErrorBanner problem={problem} />
      <form method="post" action="/web/login" class="narrow">
        <Csrf token={csrf} />
        {next && <input type="hidden" name="next" value={next} />}
        <Field
          label="User name"
          name="name"
          value={name}
          required
          autocomplete="username"
        />
        <Field
          label="Password"
          name="password"
          type="password"
          required
          autocomplete="current-password"
        />
        <Field
          label="TOTP token"
          name="token"
          required
          inputmode="numeric"
          pattern="[0-9]{6}"
          autocomplete="one-time-code"
          hint="The 6 digits your authenticator app shows now."
        />
        <button type="submit">Log in</button>
      </form>
    </Layout>
  );
}

/** GET and POST `/web/login`. */
export function loginPages({ auth }: WebDeps): Hono<WebEnv> {
  const page = async (
    c: Context,
    status: 200 | 401 | 429,
    o: { name?: string; next?: string; problem?: Problem; message?: string },
  ) => c.html(<LoginPage csrf={await loginToken(c, auth)} {...o} />, status);
  return new Hono<WebEnv>()
    .get("/", (c) => {
      const next = c.req.query("next");
      return page(c, 200, {
        next: next && NEXT_RE.test(next) ? next : undefined,
        message: MESSAGES[c.req.query("m") ?? ""],
      });
    })
    .post("/", async (c) => {
      if (!await loginTokenOk(c, auth)) return refuseCsrf(c);
      const form = await c.req.formData();
      const name = textOf(form, "name").trim();
      const n = textOf(form, "next");
      const next = NEXT_RE.test(n) ? n : undefined;
      const refused = (message: string) =>
        page(c, 401, { name, next, problem: { status: 401, message } });
      if (!NAME_RE.test(name)) {
        return refused("Invalid name, password or token");
      }
      const r = await auth.login(c, {
        name,
        password: textOf(form, "password"),
        token: textOf(form, "token").trim(),
      });
      if (!r.ok) {
        if (r.status === 401) return refused(r.message);
        const s = Math.ceil(r.retryAfterMs / 1000);
        c.header("Retry-After", String(s));
        return page(c, 429, {
          name,
          next,
          problem: {
            status: 429,
            message: `Too many failed attempts: retry in ${s} s`,
          },
        });
      }
      setSessionCookie(c, auth, r.token);
      return c.redirect(next ?? "/web/vms", 303);
    });
}

/** POST `/web/logout` (behind the session and its CSRF check). */
export function logout({ auth, log }: WebDeps): Handler<WebEnv> {
  return async (c) => {
    const s = c.get("session");
    await auth.sessions.revokeId(s.jti);
    clearSessionCookie(c, auth);
    log.info("session closed", { name: c.get("principal").name });
    return c.redirect("/web/login?m=out", 303);
  };
}
