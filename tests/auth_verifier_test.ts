/**
 * Verifier mode: an ungleich-otp compatible server decides on TOTP codes,
 * and replays are still refused locally. No answer or log line may hold a
 * seed or a token.
 */
import { captureLog, oathtool } from "./helpers/otp.ts";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { OTP_HEADERS, totpAuth } from "../api/auth.ts";
import { MemoryRevocationList } from "../api/revocations.ts";
import { BearerTokens } from "../api/tokens.ts";
import { AppEnv } from "../api/env.ts";
import { AuthLimiter } from "../core/rate_limit.ts";
import { importHostKey, newHostKey, newSeed } from "../core/secrets.ts";
import {
  EtcdReplayStore,
  type TotpVerifier,
  UngleichOtpVerifier,
} from "../core/totp.ts";
import { otpauth, Secrets } from "./helpers/identity_fixtures.ts";
import { withIdentityEnv } from "./helpers/identity_env.ts";
import { noSanitize } from "./helpers/api.ts";

Deno.test({
  name:
    "identity: LDAP, TOTP, etcd stores, bearer tokens, middleware: verifier mode",
  ...noSanitize,
  fn: (t) =>
    withIdentityEnv(t, async ({ connect, step, dirc }) => {
      await step(
        "verifier mode: an ungleich-otp compatible server decides, replays are still refused",
        async () => {
          const secrets = new Secrets();
          const log = captureLog();
          // The server side: ungleich-otp's /ungleichotp/verify/ protocol with
          // pyotp's valid_window=3, tokens checked by otpauth.
          const db: Record<string, string> = {
            "ungleich-auth/ucloud-api": secrets.add(newSeed()),
            "ucloud/alice": secrets.add(newSeed()),
          };
          const requests: string[] = [];
          const valid = (realm: unknown, name: unknown, token: unknown) => {
            const seed = db[`${realm}/${name}`];
            return seed !== undefined && typeof token === "string" &&
              otpauth(seed).validate({ token, window: 3 }) !== null;
          };
          const server = Deno.serve({
            hostname: "127.0.0.1",
            port: 0,
            onListen: () => {},
          }, async (req) => {
            const url = new URL(req.url);
            if (
              req.method !== "POST" || url.pathname !== "/ungleichotp/verify/"
            ) {
              return new Response("not found", { status: 404 });
            }
            const text = await req.text();
            requests.push(text);
            const b = JSON.parse(text);
            if (!valid(b.realm, b.name, b.token)) {
              return Response.json({
                detail: "Incorrect authentication credentials.",
              }, { status: 403 });
            }
            if (!valid(b.verifyrealm, b.verifyname, b.verifytoken)) {
              return Response.json({
                detail: "You do not have permission to perform this action.",
              }, {
                status: 403,
              });
            }
            return Response.json({ status: "OK" });
          });
          const keys = await importHostKey(newHostKey());
          const verifier: TotpVerifier = new UngleichOtpVerifier({
            url: `http://127.0.0.1:${server.addr.port}/ungleichotp/verify/`,
            name: "ucloud-api",
            realm: "ungleich-auth",
            seed: db["ungleich-auth/ucloud-api"],
            replay: new EtcdReplayStore(connect()),
            tagKey: keys.tag,
            timeoutMs: 1000,
          });
          const app = new Hono<AppEnv>();
          app.use(
            "/v1/*",
            totpAuth({
              verifier,
              users: dirc,
              bearer: new BearerTokens({
                key: keys.sign,
                revocations: new MemoryRevocationList(),
              }),
              limiter: new AuthLimiter(),
              log,
            }),
          );
          app.get("/v1/whoami", (c) => c.json(c.get("principal")));
          const call = async (token: string) => {
            const res = await app.request("/v1/whoami", {
              headers: {
                [OTP_HEADERS.name]: "alice",
                [OTP_HEADERS.realm]: "ucloud",
                [OTP_HEADERS.token]: secrets.add(token),
              },
            });
            const text = await res.text();
            secrets.bodies.push(text);
            return { status: res.status, body: JSON.parse(text) };
          };
          try {
            const token = await oathtool(db["ucloud/alice"]);
            const ok = await call(token);
            assert.equal(ok.status, 200, JSON.stringify(ok.body));
            assert.deepEqual(ok.body, { name: "alice", admin: true });
            const sent = JSON.parse(requests[0]);
            assert.deepEqual(Object.keys(sent).sort(), [
              "name",
              "realm",
              "token",
              "verifyname",
              "verifyrealm",
              "verifytoken",
            ]);
            assert.equal(sent.verifytoken, token);
            // The server would accept it again; ucloud does not.
            assert.equal((await call(token)).status, 401);
            assert.equal(requests.length, 2);
            const wrong = String((Number(token) + 1) % 1_000_000).padStart(
              6,
              "0",
            );
            assert.equal((await call(wrong)).status, 401);
            // Server down: 503, not 401.
            await server.shutdown();
            const down = await call(
              await oathtool(db["ucloud/alice"], Date.now() + 30_000),
            );
            assert.equal(down.status, 503);
            assert.equal(down.body.error.status, 503);
          } finally {
            await server.shutdown().catch(() => {});
          }
          secrets.check(log.lines);
        },
      );
    }),
});
