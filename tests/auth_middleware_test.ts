/**
 * The totpAuth() middleware on a tiny Hono app against real slapd and etcd:
 * OTP headers, JSON body, bearer tokens, 401, 429 and 503 answers. No
 * response body or log line may hold a seed or a token.
 */
import { captureLog, oathtool } from "./helpers/otp.ts";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { OTP_HEADERS, totpAuth } from "../api/auth.ts";
import { authRoutes } from "../api/auth_routes.ts";
import { MemoryRevocationList } from "../api/revocations.ts";
import { BearerTokens } from "../api/tokens.ts";
import type { AppEnv } from "../api/env.ts";
import { onError } from "../api/errors.ts";
import { AuthLimiter } from "../core/rate_limit.ts";
import { importHostKey, newHostKey, newSeed } from "../core/secrets.ts";
import {
  LocalVerifier,
  MemoryReplayStore,
  MemorySeedStore,
} from "../core/totp.ts";
import { Secrets } from "./helpers/identity_fixtures.ts";
import { withIdentityEnv } from "./helpers/identity_env.ts";
import { noSanitize } from "./helpers/api.ts";

Deno.test({
  name:
    "identity: LDAP, TOTP, etcd stores, bearer tokens, middleware: middleware",
  ...noSanitize,
  fn: (t) =>
    withIdentityEnv(t, async ({ slapd, step, up, dirc }) => {
      await step(
        "totpAuth() on a Hono app: headers, JSON body, bearer, 401, 429, 503",
        async () => {
          const secrets = new Secrets();
          const log = captureLog();
          const clock = { t: Math.floor(Date.now() / 30_000) * 30_000 + 1000 };
          const seeds = new MemorySeedStore();
          const seedOf: Record<string, string> = {};
          for (
            const [realm, name] of [
              ["ucloud", "alice"],
              ["ucloud", "bob"],
              ["ucloud", "ghost"], // has a seed, not in LDAP
              ["ucloud-services", "billing"],
            ]
          ) {
            seedOf[name] = secrets.add(newSeed());
            seeds.set(realm, name, seedOf[name]);
          }
          const keys = await importHostKey(newHostKey());
          const bearer = new BearerTokens({
            key: keys.sign,
            revocations: new MemoryRevocationList(),
          });
          const app = new Hono<AppEnv>();
          app.onError(onError);
          app.use(
            "/v1/*",
            totpAuth({
              verifier: new LocalVerifier({
                seeds,
                replay: new MemoryReplayStore({ now: () => clock.t }),
                now: () => clock.t,
              }),
              users: dirc,
              bearer,
              limiter: new AuthLimiter({
                perName: { limit: 3, windowMs: 60_000 },
                perAddress: { limit: 6, windowMs: 60_000 },
                now: () => clock.t,
              }),
              serviceRealms: { "ucloud-services": { admin: false } },
              log,
            }),
          );
          app.route("/v1/auth", authRoutes({ bearer }));
          app.get("/v1/whoami", (c) => c.json(c.get("principal")));
          app.post("/v1/echo", async (c) => c.json(await c.req.json()));

          const call = async (
            method: string,
            path: string,
            init: {
              headers?: Record<string, string>;
              json?: unknown;
              from?: string;
            } = {},
          ) => {
            const headers = new Headers(init.headers);
            if (init.json !== undefined) {
              headers.set("content-type", "application/json");
            }
            const res = await app.request(path, {
              method,
              headers,
              body: init.json === undefined
                ? undefined
                : JSON.stringify(init.json),
            }, { remoteAddr: { hostname: init.from ?? "2001:db8::1" } });
            const text = await res.text();
            if (path !== "/v1/auth/token" || res.status !== 200) {
              secrets.bodies.push(text);
            }
            return {
              status: res.status,
              headers: res.headers,
              body: JSON.parse(text),
            };
          };
          const otp = async (
            name: string,
            realm = "ucloud",
            stepOffset = 0,
          ) => {
            const token = secrets.add(
              await oathtool(seedOf[name], clock.t + stepOffset * 30_000),
            );
            return {
              [OTP_HEADERS.name]: name,
              [OTP_HEADERS.realm]: realm,
              [OTP_HEADERS.token]: token,
            };
          };
          /** Moves past every step a token could still be accepted in. */
          const nextWindow = () => clock.t += 90_000;
          const assert401 = (
            r: { status: number; body: { error: unknown } },
          ) => {
            assert.equal(r.status, 401, JSON.stringify(r.body));
            assert.deepEqual(Object.keys(r.body), ["error"]);
            assert.deepEqual(
              Object.keys(r.body.error as object).sort(),
              ["code", "message", "status"],
            );
            assert.equal(
              (r.body.error as { code: string }).code,
              "unauthorized",
            );
          };

          // No credentials.
          const none = await call("GET", "/v1/whoami");
          assert401(none);
          assert.equal(
            none.headers.get("www-authenticate"),
            'Bearer realm="ucloud"',
          );

          // Header mode: alice is an admin, bob is not.
          const h = await otp("alice");
          assert.deepEqual(
            (await call("GET", "/v1/whoami", { headers: h })).body,
            {
              name: "alice",
              admin: true,
            },
          );
          assert401(await call("GET", "/v1/whoami", { headers: h })); // replay
          assert.deepEqual(
            (await call("GET", "/v1/whoami", { headers: await otp("bob") }))
              .body,
            { name: "bob", admin: false },
          );

          // Two steps old: refused.
          nextWindow();
          assert401(
            await call("GET", "/v1/whoami", {
              headers: await otp("bob", "ucloud", -2),
            }),
          );

          // JSON body mode (ungleich-otp clients): credentials are taken out
          // of the body the handler sees.
          nextWindow();
          const b = await otp("bob");
          const echo = await call("POST", "/v1/echo", {
            json: {
              name: "bob",
              realm: "ucloud",
              token: b[OTP_HEADERS.token],
              hello: "world",
            },
          });
          assert.equal(echo.status, 200);
          assert.deepEqual(echo.body, { hello: "world" });

          // Exchange for a bearer token (headers), then use it.
          nextWindow();
          const issued = await call("POST", "/v1/auth/token", {
            headers: await otp("alice"),
          });
          assert.equal(issued.status, 200);
          assert.equal(issued.body.tokenType, "Bearer");
          assert.equal(issued.body.expiresIn, 900);
          const auth = { authorization: `Bearer ${issued.body.token}` };
          assert.deepEqual(
            (await call("GET", "/v1/whoami", { headers: auth })).body,
            {
              name: "alice",
              admin: true,
            },
          );
          // A bearer token cannot mint another one.
          assert401(await call("POST", "/v1/auth/token", { headers: auth }));
          assert401(
            await call("GET", "/v1/whoami", {
              headers: { authorization: "Bearer uc1.x.y" },
            }),
          );
          assert401(
            await call("GET", "/v1/whoami", {
              headers: { authorization: "Basic YWxpY2U6eA==" },
            }),
          );
          // Exchange with a JSON body, as an ungleich-otp client would post.
          const viaBody = await call("POST", "/v1/auth/token", {
            json: {
              name: "bob",
              realm: "ucloud",
              token: (await otp("bob"))[OTP_HEADERS.token],
            },
          });
          assert.equal(viaBody.status, 200);
          const bobAuth = { authorization: `Bearer ${viaBody.body.token}` };
          assert.equal(
            (await call("GET", "/v1/whoami", { headers: bobAuth })).body.name,
            "bob",
          );
          assert.equal(await bearer.revoke(viaBody.body.token), true);
          assert401(await call("GET", "/v1/whoami", { headers: bobAuth }));

          // A service realm: principal <realm>:<name>, no LDAP.
          assert.deepEqual(
            (await call("GET", "/v1/whoami", {
              headers: await otp("billing", "ucloud-services"),
            })).body,
            { name: "ucloud-services:billing", admin: false },
          );

          // Unknown: a seed but no LDAP user; an LDAP user without seed; a realm.
          assert401(
            await call("GET", "/v1/whoami", {
              headers: await otp("ghost"),
              from: "2001:db8::9",
            }),
          );
          assert401(
            await call("GET", "/v1/whoami", {
              headers: { ...(await otp("alice")), [OTP_HEADERS.name]: "carol" },
              from: "2001:db8::9",
            }),
          );
          assert401(
            await call("GET", "/v1/whoami", {
              headers: await otp("alice", "elsewhere"),
              from: "2001:db8::9",
            }),
          );
          assert401(
            await call("GET", "/v1/whoami", {
              headers: { [OTP_HEADERS.name]: "alice" },
              from: "2001:db8::9",
            }),
          );

          // Per name: after 3 failures even the right token gets 429.
          nextWindow();
          for (let i = 0; i < 3; i++) {
            assert401(
              await call("GET", "/v1/whoami", {
                headers: {
                  ...(await otp("bob")),
                  [OTP_HEADERS.token]: "000000",
                },
                from: `2001:db8::a${i}`,
              }),
            );
          }
          const limited = await call("GET", "/v1/whoami", {
            headers: await otp("bob"),
            from: "2001:db8::b",
          });
          assert.equal(limited.status, 429);
          assert.equal(limited.body.error.code, "too_many_requests");
          assert.ok(Number(limited.headers.get("retry-after")) > 0);
          // Other names are not affected; the window passing lifts it.
          assert.equal(
            (await call("GET", "/v1/whoami", {
              headers: await otp("alice"),
              from: "2001:db8::b",
            })).status,
            200,
          );
          clock.t += 60_000;
          assert.equal(
            (await call("GET", "/v1/whoami", {
              headers: await otp("bob"),
              from: "2001:db8::b",
            })).status,
            200,
          );

          // Per address (one /64): 6 failures with any names refuse nobody
          // with a valid credential, but take away the free failures.
          nextWindow();
          for (let i = 0; i < 6; i++) {
            assert401(
              await call("GET", "/v1/whoami", {
                headers: {
                  ...(await otp("alice")),
                  [OTP_HEADERS.name]: `user${i}`,
                },
                from: "2001:db8::bad",
              }),
            );
          }
          assert.equal(
            (await call("GET", "/v1/whoami", {
              headers: await otp("alice"),
              from: "2001:db8::bad",
            })).status,
            200,
          );
          assert.equal(
            (await call("GET", "/v1/whoami", {
              headers: auth,
              from: "2001:db8::bad",
            })).status,
            200,
          );
          assert401(
            await call("GET", "/v1/whoami", {
              headers: { ...(await otp("bob")), [OTP_HEADERS.token]: "000000" },
              from: "2001:db8::bad",
            }),
          );
          assert.equal(
            (await call("GET", "/v1/whoami", {
              headers: await otp("bob"),
              from: "2001:db8::good",
            })).status,
            429,
            "one failure from a noisy address backs the name off",
          );

          // slapd down: 503 for TOTP (the token is not used up), bearer still works.
          nextWindow();
          await slapd.stop();
          try {
            const h2 = await otp("alice");
            const down = await call("GET", "/v1/whoami", {
              headers: h2,
              from: "2001:db8::c",
            });
            assert.equal(down.status, 503);
            assert.deepEqual(down.body.error.code, "unavailable");
            assert.deepEqual(Object.keys(down.body.error).sort(), [
              "code",
              "message",
              "status",
            ]);
            assert.equal(
              (await call("GET", "/v1/whoami", {
                headers: auth,
                from: "2001:db8::c",
              })).status,
              200,
            );
            await slapd.start();
            assert.equal(
              (await call("GET", "/v1/whoami", {
                headers: h2,
                from: "2001:db8::c",
              })).status,
              200,
            );
          } finally {
            await up();
          }

          assert.ok(log.lines.some((l) => l.includes('"reason":"replayed"')));
          assert.ok(
            log.lines.some((l) => l.includes('"msg":"otp check unavailable"')),
          );
          secrets.check(log.lines, [issued.body.token, viaBody.body.token]);
        },
      );
    }),
});
