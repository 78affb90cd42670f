/**
 * Identity against a real slapd and etcd: LDAP lookups and password binds,
 * TOTP tokens made independently by oathtool and otpauth, replay refusal in
 * memory and in etcd, encrypted seeds, bearer tokens, the auth middleware
 * on a tiny Hono app, and verifier mode against an ungleich-otp compatible
 * endpoint. No response body or log line may hold a seed or a token.
 */
import { captureLog, oathtool } from "./helpers/otp.ts";
import { recordSecret } from "./helpers/secrets_log.ts";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Hono } from "hono";
import * as OTPAuth from "otpauth";
import { z } from "zod";
import { OTP_HEADERS, totpAuth } from "../api/auth.ts";
import { authRoutes } from "../api/auth_routes.ts";
import {
  EtcdRevocationList,
  MemoryRevocationList,
  revokedKey,
} from "../api/revocations.ts";
import { BearerTokens } from "../api/tokens.ts";
import type { AppEnv } from "../api/env.ts";
import { onError } from "../api/errors.ts";
import { UnavailableError } from "../core/errors.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { Directory, IdentityConfig } from "../core/ldap.ts";
import { AuthLimiter } from "../core/rate_limit.ts";
import {
  importHostKey,
  newHostKey,
  newSeed,
  SecretDecryptError,
} from "../core/secrets.ts";
import { Store } from "../core/store.ts";
import {
  EtcdReplayStore,
  EtcdSeedStore,
  LocalVerifier,
  MemoryReplayStore,
  MemorySeedStore,
  otpKeys,
  SeedDoc,
  type TotpVerifier,
  UngleichOtpVerifier,
} from "../core/totp.ts";
import {
  BASE_DN,
  groupLdif,
  SERVICE_DN,
  SERVICE_PW,
  type Slapd,
  startSlapd,
  userLdif,
} from "./helpers/slapd.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };

function otpauth(seed: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32(seed),
    algorithm: "SHA1",
    digits: 6,
    period: 30,
  });
}

/** Seeds and tokens used by a test, and what must never show them. */
class Secrets {
  readonly values = new Set<string>();
  readonly bodies: string[] = [];

  add<T extends string>(v: T): T {
    recordSecret(v);
    this.values.add(v);
    return v;
  }

  /** Asserts that no body or line holds any secret. */
  check(lines: string[], extra: string[] = []): void {
    for (const text of [...this.bodies, ...lines]) {
      for (const s of [...this.values, ...extra]) {
        assert.ok(
          !new RegExp(`(^|[^0-9A-Za-z])${s}([^0-9A-Za-z]|$)`).test(text),
          `secret found in: ${text}`,
        );
      }
    }
  }
}

const ldapConfig = (slapd: Slapd) =>
  IdentityConfig.parse({
    ldap: {
      url: slapd.url,
      baseDn: BASE_DN,
      bindDn: SERVICE_DN,
      bindPassword: SERVICE_PW,
      timeoutMs: 1000,
    },
  }).ldap;

Deno.test({
  name: "identity: LDAP, TOTP, etcd stores, bearer tokens, middleware",
  ...noSanitize,
  async fn(t) {
    const slapd = await startSlapd();
    const dir = await Deno.makeTempDir({ prefix: "ucloud-auth-test-" });
    const etcd = await startEtcd({ dataDir: dir });
    const stores: Store[] = [];
    let n = 0;
    /** A new client; `prefix` of another one to play a second replica. */
    const connect = (prefix = `/t/${++n}`) => {
      const s = Store.connect({ endpoints: [etcd.endpoint], prefix });
      stores.push(s);
      return s;
    };
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    const up = async () => {
      if (!slapd.pid) await slapd.start();
    };

    try {
      await slapd.add(
        [
          userLdif("alice", "alice-pw"),
          userLdif("bob", "bob-pw"),
          userLdif("carol", "carol-pw"),
          groupLdif("ucloud-admins", ["alice"]),
          groupLdif("developers", ["alice", "bob"]),
          `dn: cn=ops,ou=groups,${BASE_DN}\nobjectClass: posixGroup\ncn: ops\ngidNumber: 1000\nmemberUid: bob\n`,
        ].join("\n"),
      );
      const dirc = new Directory(ldapConfig(slapd));

      await step("IdentityConfig has defaults and refuses bad settings", () => {
        const d = IdentityConfig.parse({});
        assert.equal(d.ldap.url, "ldap://127.0.0.1:389");
        assert.equal(d.ldap.adminGroup, "ucloud-admins");
        assert.equal(d.otp.mode, "local");
        assert.equal(d.otp.windowSteps, 1);
        assert.equal(d.bearerTtlSeconds, 900);
        assert.deepEqual(d.rateLimit.perName, {
          limit: 5,
          windowSeconds: 3600,
          backoffBaseSeconds: 1,
          backoffMaxSeconds: 900,
        });
        const bad = (v: unknown, path: string) => {
          const r = IdentityConfig.safeParse(v);
          assert.ok(!r.success, JSON.stringify(v));
          assert.equal(r.error.issues[0].path.join("."), path);
        };
        bad({ ldap: { url: "http://x" } }, "ldap.url");
        bad({ ldap: { userFilter: "objectClass=x)(" } }, "ldap.userFilter");
        bad({ otp: { windowSteps: 2 } }, "otp.windowSteps");
        bad({ otp: { mode: "ungleichotp" } }, "otp.server");
        bad({ otp: { userRealm: "a/b" } }, "otp.userRealm");
        bad({ bearerTtlSeconds: 10 }, "bearerTtlSeconds");
        assert.ok(
          IdentityConfig.safeParse({
            otp: {
              mode: "ungleichotp",
              server: {
                url: "https://otp.example/ungleichotp/verify/",
                name: "ucloud-api",
                realm: "ungleich-auth",
                seed: "PZKBPTHDGSLZBKIZ",
              },
            },
          }).success,
        );
        return Promise.resolve();
      });

      await step(
        "Directory.lookup() finds a user, its groups and admin role",
        async () => {
          assert.deepEqual(await dirc.lookup("alice"), {
            name: "alice",
            dn: `uid=alice,ou=users,${BASE_DN}`,
            groups: ["developers", "ucloud-admins"],
            admin: true,
          });
          const bob = await dirc.lookup("bob");
          assert.deepEqual(bob?.groups, ["developers"]);
          assert.equal(bob?.admin, false);
          assert.equal(await dirc.lookup("nobody"), null);
          // LDAP would match uid case-insensitively: no second principal.
          assert.equal(await dirc.lookup("Alice"), null);
          assert.equal(await dirc.checkPassword("ALICE", "alice-pw"), false);
          // Filter syntax in a name is not a pattern: refused before LDAP.
          assert.equal(await dirc.lookup("*"), null);
          assert.equal(await dirc.lookup("a*"), null);
          assert.equal(await dirc.lookup("alice)(uid=*"), null);
        },
      );

      await step(
        "Directory maps memberUid groups when memberValue is name",
        async () => {
          const cfg = {
            ...ldapConfig(slapd),
            groupFilter: "(objectClass=posixGroup)",
            memberAttribute: "memberUid",
            memberValue: "name" as const,
            adminGroup: "ops",
          };
          const d = new Directory(cfg);
          assert.deepEqual(await d.lookup("bob"), {
            name: "bob",
            dn: `uid=bob,ou=users,${BASE_DN}`,
            groups: ["ops"],
            admin: true,
          });
          assert.equal((await d.lookup("alice"))?.admin, false);
        },
      );

      await step("Directory.checkPassword() binds as the user", async () => {
        assert.equal(await dirc.checkPassword("alice", "alice-pw"), true);
        assert.equal(await dirc.checkPassword("alice", "bob-pw"), false);
        assert.equal(await dirc.checkPassword("alice", ""), false);
        assert.equal(await dirc.checkPassword("nobody", "x"), false);
        assert.equal(await dirc.checkPassword("bob", "bob-pw"), true);
      });

      await step(
        "Directory raises UnavailableError while slapd is down, then recovers",
        async () => {
          await slapd.stop();
          try {
            await assert.rejects(dirc.lookup("alice"), (err: Error) => {
              assert.ok(err instanceof UnavailableError);
              assert.match(
                err.message,
                /Cannot look up user alice: LDAP ldap:/,
              );
              return true;
            });
            await assert.rejects(
              dirc.checkPassword("alice", "alice-pw"),
              UnavailableError,
            );
          } finally {
            await up();
          }
          assert.equal((await dirc.lookup("alice"))?.admin, true);
          assert.equal(await dirc.checkPassword("alice", "alice-pw"), true);
        },
      );

      await step(
        "Directory raises UnavailableError when the service bind is refused",
        async () => {
          const d = new Directory({
            ...ldapConfig(slapd),
            bindPassword: "wrong",
          });
          await assert.rejects(d.lookup("alice"), UnavailableError);
        },
      );

      await step(
        "an oathtool token is accepted once; 2 steps old or another seed is refused",
        async () => {
          const seed = newSeed();
          const seeds = new MemorySeedStore();
          seeds.set("ucloud", "alice", seed);
          const v = new LocalVerifier({
            seeds,
            replay: new MemoryReplayStore(),
          });
          const now = Date.now();
          const token = await oathtool(seed, now);
          assert.equal(otpauth(seed).generate({ timestamp: now }), token);
          const cred = { name: "alice", realm: "ucloud", token };
          assert.deepEqual(await v.verify(cred), { ok: true });
          assert.deepEqual(await v.verify(cred), {
            ok: false,
            reason: "replayed",
          });
          const old = await oathtool(seed, now - 60_000);
          assert.deepEqual(await v.verify({ ...cred, token: old }), {
            ok: false,
            reason: "invalid",
          });
          const other = await oathtool(newSeed(), now);
          if (other !== token) {
            assert.deepEqual(await v.verify({ ...cred, token: other }), {
              ok: false,
              reason: "invalid",
            });
          }
          // otpauth's token one step ahead (a client clock slightly fast).
          const ahead = otpauth(seed).generate({ timestamp: now + 30_000 });
          assert.deepEqual(await v.verify({ ...cred, token: ahead }), {
            ok: true,
          });
        },
      );

      await step(
        "EtcdReplayStore refuses a token replayed at another API replica",
        async () => {
          const seed = newSeed();
          const seeds = new MemorySeedStore();
          seeds.set("ucloud", "alice", seed);
          const store = connect();
          const a = new LocalVerifier({
            seeds,
            replay: new EtcdReplayStore(store),
          });
          const b = new LocalVerifier({
            seeds,
            replay: new EtcdReplayStore(connect(`/t/${n}`)),
          });
          const token = await oathtool(seed);
          const cred = { name: "alice", realm: "ucloud", token };
          assert.deepEqual(await a.verify(cred), { ok: true });
          assert.deepEqual(await b.verify(cred), {
            ok: false,
            reason: "replayed",
          });
          assert.deepEqual(await a.verify(cred), {
            ok: false,
            reason: "replayed",
          });
          // The record is bound to a lease that outlives the token's window.
          const used = await store.list("otp-used/ucloud/alice/", z.unknown());
          assert.equal(used.items.length, 1);
          const lease = used.items[0].lease;
          assert.notEqual(lease, "0");
          const ttl = await store.client.leaseClient.leaseTimeToLive({
            ID: lease,
          });
          assert.ok(
            Number(ttl.TTL) > 30 && Number(ttl.TTL) <= 100,
            `TTL ${ttl.TTL}`,
          );
          assert.ok(!JSON.stringify(used.items).includes(token));
        },
      );

      await step(
        "EtcdReplayStore lets exactly one of concurrent claims win",
        async () => {
          const stores2 = [connect(), connect()].map((s) =>
            new EtcdReplayStore(s)
          );
          // Two replicas: two clients on one prefix.
          const shared = connect();
          const r1 = new EtcdReplayStore(shared);
          const r2 = new EtcdReplayStore(connect(`/t/${n}`));
          const id = otpKeys.used("ucloud", "bob", "123");
          const exp = Date.now() + 90_000;
          const results = await Promise.all(
            [r1, r2, r1, r2].map((r) => r.claim(id, exp)),
          );
          assert.equal(results.filter(Boolean).length, 1);
          // Records of one step share one lease: few leases, bounded keys each.
          await Promise.all(
            ["a", "b", "c"].map((u) =>
              r1.claim(otpKeys.used("ucloud", u, "123"), exp)
            ),
          );
          const { items } = await shared.list("otp-used/", z.unknown());
          assert.equal(items.length, 4);
          const byR1 = items.filter((kv) => !kv.key.includes("/bob/"));
          assert.equal(new Set(byR1.map((kv) => kv.lease)).size, 1);
          // A lease revoked behind its back: one failure, then a new lease.
          await shared.client.leaseClient.leaseRevoke({ ID: byR1[0].lease });
          const d = otpKeys.used("ucloud", "d", "123");
          await assert.rejects(r1.claim(d, exp), UnavailableError);
          assert.equal(await r1.claim(d, exp), true);
          assert.equal(await r1.claim(d, exp), false);
          // Separate prefixes are separate clusters' keyspaces.
          assert.equal(await stores2[0].claim(id, exp), true);
          assert.equal(await stores2[1].claim(id, exp), true);
        },
      );

      await step(
        "EtcdSeedStore keeps seeds encrypted and detects tampering",
        async () => {
          const store = connect();
          const keys = await importHostKey(newHostKey());
          const seeds = new EtcdSeedStore(store, keys.seal);
          const seed = await seeds.create("ucloud", "alice");
          assert.match(seed, /^[A-Z2-7]{32}$/);
          assert.equal(await seeds.get("ucloud", "alice"), seed);
          assert.equal(await seeds.get("ucloud", "bob"), null);
          await assert.rejects(
            seeds.create("ucloud", "alice"),
            /already has one/,
          );
          const doc = await store.get(otpKeys.seed("ucloud", "alice"), SeedDoc);
          assert.ok(doc && !doc.value.seed.includes(seed));
          // Another host key cannot read it.
          const other = new EtcdSeedStore(
            store,
            (await importHostKey(newHostKey())).seal,
          );
          await assert.rejects(
            other.get("ucloud", "alice"),
            SecretDecryptError,
          );
          // A seed copied to another name does not decrypt there.
          await store.txn().put(otpKeys.seed("ucloud", "mallory"), doc.value)
            .commit();
          await assert.rejects(
            seeds.get("ucloud", "mallory"),
            SecretDecryptError,
          );
          // A flipped bit is detected.
          const raw = doc.value.seed;
          const flipped = raw.slice(0, 10) + (raw[10] === "A" ? "B" : "A") +
            raw.slice(11);
          await store.txn().put(otpKeys.seed("ucloud", "alice"), {
            ...doc.value,
            seed: flipped,
          }).commit();
          await assert.rejects(seeds.get("ucloud", "alice"), /tampered/);
          const fresh = await seeds.create("ucloud", "alice", {
            replace: true,
          });
          assert.notEqual(fresh, seed);
          assert.equal(await seeds.get("ucloud", "alice"), fresh);
          assert.equal(await seeds.delete("ucloud", "alice"), true);
          assert.equal(await seeds.delete("ucloud", "alice"), false);
          assert.equal(await seeds.get("ucloud", "alice"), null);
        },
      );

      await step("BearerTokens sign, verify, expire and revoke", async () => {
        const keys = await importHostKey(newHostKey());
        const c = { t: 1_700_000_000_000 };
        const revocations = new MemoryRevocationList(() => c.t);
        const bearer = new BearerTokens({
          key: keys.sign,
          revocations,
          now: () => c.t,
        });
        const { token, claims } = await bearer.issue({
          name: "bob",
          admin: false,
        });
        assert.equal(claims.exp - claims.iat, 900);
        const ok = await bearer.verify(token);
        assert.ok(ok.ok);
        assert.deepEqual(ok.principal, { name: "bob", admin: false });
        // Claims edited to admin: the signature no longer matches.
        const [, body, mac] = token.split(".");
        const forged = Buffer.from(
          JSON.stringify({
            ...JSON.parse(Buffer.from(body, "base64url").toString()),
            adm: true,
          }),
        ).toString("base64url");
        assert.deepEqual(await bearer.verify(`uc1.${forged}.${mac}`), {
          ok: false,
          reason: "signature",
        });
        assert.deepEqual(await bearer.verify("uc1.abc"), {
          ok: false,
          reason: "malformed",
        });
        const otherKey = new BearerTokens({
          key: (await importHostKey(newHostKey())).sign,
          revocations,
          now: () => c.t,
        });
        assert.deepEqual(await otherKey.verify(token), {
          ok: false,
          reason: "signature",
        });
        c.t += 899_000;
        assert.ok((await bearer.verify(token)).ok);
        c.t += 1000;
        assert.deepEqual(await bearer.verify(token), {
          ok: false,
          reason: "expired",
        });
        c.t -= 900_000;
        assert.equal(await bearer.revoke(token), true);
        assert.deepEqual(await bearer.verify(token), {
          ok: false,
          reason: "revoked",
        });
        assert.equal(await bearer.revoke("garbage"), false);
      });

      await step(
        "EtcdRevocationList revokes across replicas until expiry",
        async () => {
          const store = connect();
          const keys = await importHostKey(newHostKey());
          const a = new BearerTokens({
            key: keys.sign,
            revocations: new EtcdRevocationList(store),
          });
          const b = new BearerTokens({
            key: keys.sign,
            revocations: new EtcdRevocationList(store),
          });
          const { token, claims } = await a.issue({
            name: "alice",
            admin: true,
          });
          assert.ok((await b.verify(token)).ok);
          assert.equal(await a.revoke(token), true);
          assert.deepEqual(await b.verify(token), {
            ok: false,
            reason: "revoked",
          });
          const kv = await store.get(revokedKey(claims.jti), z.unknown());
          assert.ok(kv && kv.lease !== "0");
        },
      );

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
    } finally {
      for (const s of stores) s.close();
      await slapd.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
