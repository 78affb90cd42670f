/**
 * The identity flows of the real app with the identity auth (real slapd,
 * real etcd): TOTP seeds made once with the LDAP password, TOTP exchanged
 * for bearer tokens, the web session cookie, revocation, service seeds in
 * their realms, and `ucloud login`, `whoami` and the CLI's cached bearer
 * token. No response body or log line holds a seed or a token, except the
 * answer that created or issued it. The authorization matrix over every
 * operation is tests/auth_matrix_test.ts.
 */
import { oathtool } from "./helpers/otp.ts";
import assert from "node:assert/strict";
import { main as cliMain } from "../cli/main.ts";
import { totp as cliTotp } from "../core/totp_token.ts";
import { dump } from "./helpers/cluster.ts";
import { noSanitize } from "./helpers/api.ts";
import { withAuthzEnv } from "./helpers/authz_env.ts";
import { assertNoLeaks } from "./helpers/secrets_log.ts";

Deno.test({
  name:
    "auth: seeds, bearer tokens, web sessions, revocation, service seeds and ucloud login with the real identity",
  ...noSanitize,
  fn: (t) =>
    withAuthzEnv(t, async (env) => {
      const {
        dir,
        store,
        step,
        log,
        identity,
        app,
        answers,
        secrets,
        seeds,
        call,
        totpHeaders,
        bearerHeaders,
        cookieOf,
        createSeed,
        exchange,
      } = env;
      let aliceBearer = "";
      let bobBearer = "";
      let bobUsedToken = "";
      await step("seeds are created once with the LDAP password", async () => {
        await createSeed("alice", "alice-pw");
        const first = await createSeed("bob", "bob-pw");
        const again = await call("POST", "/v1/auth/seed", {
          json: { name: "bob", password: "bob-pw" },
        });
        assert.equal(again.status, 409, again.text);
        // A rotation proves the old seed: password and current token.
        const rotated = await createSeed("bob", "bob-pw", true, {
          // The previous step: the later steps here use bob's others.
          token: await oathtool(first, Date.now() - 30_000),
        });
        assert.notEqual(rotated, first);
        const wrong = await call("POST", "/v1/auth/seed", {
          json: { name: "bob", password: "alice-pw" },
        });
        assert.equal(wrong.status, 401);
        // Encrypted at rest: etcd never holds a seed in clear.
        const all = JSON.stringify(await dump(store));
        for (const s of secrets) assert.ok(!all.includes(s));
        // The old seed of bob no longer works.
        const old = await call("GET", "/v1/auth/whoami", {
          headers: totpHeaders("bob", await oathtool(first, Date.now())),
        });
        assert.equal(old.status, 401);
      });

      await step("TOTP (oathtool) is exchanged for bearer tokens", async () => {
        aliceBearer = await exchange("alice", await oathtool(seeds.alice));
        bobUsedToken = await oathtool(seeds.bob);
        bobBearer = await exchange("bob", bobUsedToken);
        const me = await call("GET", "/v1/auth/whoami", {
          headers: bearerHeaders(bobBearer),
        });
        assert.deepEqual(me.body, {
          name: "bob",
          admin: false,
          method: "bearer",
        });
        const replay = await call("POST", "/v1/auth/token", {
          headers: totpHeaders("bob", bobUsedToken),
        });
        assert.equal(replay.status, 401);
      });

      await step("web session: LDAP password plus TOTP, a cookie", async () => {
        const token = await oathtool(seeds.bob, Date.now() + 30_000);
        const wrong = String((Number(token) + 1) % 1e6).padStart(6, "0");
        secrets.add(token);
        const before = await dump(store);
        for (
          const json of [
            { name: "bob", password: "alice-pw", token },
            { name: "bob", password: "bob-pw", token: wrong },
            { name: "bob", token },
            { name: "mallory", password: "bob-pw", token },
          ]
        ) {
          const r = await call("POST", "/v1/auth/session", { json });
          assert.equal(r.status, 401, r.text);
          assert.equal(r.headers.get("set-cookie"), null);
        }
        assert.deepEqual(await dump(store), before);
        const ok = await call("POST", "/v1/auth/session", {
          json: { name: "bob", password: "bob-pw", token },
        });
        assert.equal(ok.status, 200, ok.text);
        assert.equal((ok.body as { expiresIn: number }).expiresIn, 900);
        const parts = ok.headers.get("set-cookie")!.split(/;\s*/);
        const m = /^ucloud_session=(ucs1\.[A-Za-z0-9_.-]+)$/.exec(parts[0]);
        assert.ok(m, parts[0]);
        const session = m[1];
        secrets.add(session);
        assert.deepEqual(parts.slice(1).sort(), [
          "HttpOnly",
          "Max-Age=900",
          "Path=/",
          "SameSite=Strict",
          "Secure",
        ]);
        const me = await call("GET", "/v1/auth/whoami", {
          headers: cookieOf(session),
        });
        assert.deepEqual(me.body, {
          name: "bob",
          admin: false,
          method: "session",
        });
        // A write with the cookie from another origin (a sibling subdomain
        // is the same site, so SameSite does not stop it): 403, nothing
        // written. The same request from the site's own page goes on.
        const beforeCross = await dump(store);
        for (
          const cross of [
            { "sec-fetch-site": "same-site" },
            { "sec-fetch-site": "cross-site" },
            { origin: "http://evil.example" },
          ] as Record<string, string>[]
        ) {
          const r = await call("POST", "/v1/keys", {
            headers: { ...cookieOf(session), ...cross },
            json: { name: "k1", publicKey: "ssh-ed25519 AAAA" },
          });
          assert.equal(r.status, 403, `${JSON.stringify(cross)}: ${r.text}`);
        }
        assert.deepEqual(await dump(store), beforeCross);
        const same = await call("GET", "/v1/keys", {
          headers: { ...cookieOf(session), "sec-fetch-site": "cross-site" },
        });
        assert.equal(same.status, 200, same.text);
        const own = await call("POST", "/v1/keys", {
          headers: { ...cookieOf(session), "sec-fetch-site": "same-origin" },
          json: { name: "k1", publicKey: "ssh-ed25519 AAAA" },
        });
        assert.notEqual(own.status, 403, own.text);
        assert.notEqual(own.status, 401, own.text);
        // Replay-protected; a session is no bearer and extends nothing.
        const replay = await call("POST", "/v1/auth/session", {
          json: { name: "bob", password: "bob-pw", token },
        });
        assert.equal(replay.status, 401);
        for (
          const [path, headers] of [
            ["/v1/auth/whoami", bearerHeaders(session)],
            ["/v1/auth/token", cookieOf(session)],
          ] as const
        ) {
          const r = await call(
            path.endsWith("token") ? "POST" : "GET",
            path,
            { headers },
          );
          assert.equal(r.status, 401, r.text);
        }
        const out = await call("DELETE", "/v1/auth/session", {
          headers: cookieOf(session),
        });
        assert.deepEqual(out.body, { revoked: true });
        assert.match(
          out.headers.get("set-cookie")!,
          /^ucloud_session=;.*Max-Age=0/,
        );
        const after = await call("GET", "/v1/auth/whoami", {
          headers: cookieOf(session),
        });
        assert.equal(after.status, 401);
      });

      await step("revoke: own token or session; admins any jti", async () => {
        const own = (await identity.bearer.issue({ name: "bob", admin: false }))
          .token;
        const other = await identity.bearer.issue({
          name: "bob",
          admin: false,
        });
        const sess =
          (await identity.sessions.issue({ name: "bob", admin: false })).token;
        for (const x of [own, other.token, sess]) secrets.add(x);
        const before = await dump(store);
        const denied = await call("POST", "/v1/auth/revoke", {
          headers: bearerHeaders(bobBearer),
          json: { jti: other.claims.jti },
        });
        assert.equal(denied.status, 403, denied.text);
        assert.deepEqual(await dump(store), before);
        for (const headers of [bearerHeaders(own), cookieOf(sess)]) {
          const r = await call("POST", "/v1/auth/revoke", { headers });
          assert.deepEqual(r.body, { revoked: true }, r.text);
          const w = await call("GET", "/v1/auth/whoami", { headers });
          assert.equal(w.status, 401);
        }
        const byAdmin = await call("POST", "/v1/auth/revoke", {
          headers: bearerHeaders(aliceBearer),
          json: { jti: other.claims.jti },
        });
        assert.deepEqual(byAdmin.body, { revoked: true }, byAdmin.text);
        const w = await call("GET", "/v1/auth/whoami", {
          headers: bearerHeaders(other.token),
        });
        assert.equal(w.status, 401);
      });

      await step(
        "service seeds: admins create them in service realms",
        async () => {
          const made = await call("POST", "/v1/auth/services", {
            headers: bearerHeaders(aliceBearer),
            json: { name: "backup", realm: "svc" },
          });
          assert.equal(made.status, 201, made.text);
          const seed = (made.body as { seed: string }).seed;
          assert.match(seed, /^[A-Z2-7]{32}$/);
          answers[answers.length - 1].allowed.push(seed);
          secrets.add(seed);
          const before = await dump(store);
          for (
            const [json, status] of [
              [{ name: "backup", realm: "svc" }, 409],
              [{ name: "backup", realm: "ucloud" }, 400],
              [{ name: "backup", realm: "nope" }, 400],
            ] as const
          ) {
            const r = await call("POST", "/v1/auth/services", {
              headers: bearerHeaders(aliceBearer),
              json,
            });
            assert.equal(r.status, status, r.text);
          }
          assert.deepEqual(await dump(store), before);
          const token = await oathtool(seed);
          secrets.add(token);
          const me = await call("GET", "/v1/auth/whoami", {
            headers: {
              "X-Otp-Name": "backup",
              "X-Otp-Realm": "svc",
              "X-Otp-Token": token,
            },
          });
          assert.deepEqual(me.body, {
            name: "svc:backup",
            admin: false,
            method: "totp",
          });
        },
      );

      await step("ucloud login, whoami and a cached bearer token", async () => {
        const home = `${dir}/xdg`;
        const api = "http://ucloud.test";
        let exchanges = 0;
        const fetchApp: typeof fetch = (input, init) => {
          const req = new Request(input, init);
          if (new URL(req.url).pathname === "/v1/auth/token") exchanges++;
          return Promise.resolve(app.fetch(req));
        };
        const cli = async (argv: string[], stdin = "") => {
          let out = "";
          let err = "";
          const code = await cliMain(argv, {
            fetch: fetchApp,
            env: { XDG_CONFIG_HOME: home },
            stdout: { write: (t) => out += t },
            stderr: { write: (t) => err += t },
            readStdin: () => Promise.resolve(stdin),
            readLine: () => Promise.reject(new Error("no terminal")),
          });
          return { code, out, err };
        };
        const login = await cli(
          [
            "login",
            "--api",
            api,
            "--name",
            "carol",
            "--realm",
            "ucloud",
            "--password-stdin",
            "--replace",
          ],
          "carol-pw\n",
        );
        assert.equal(login.code, 0, login.err);
        assert.match(login.out, /logged in to http:\/\/ucloud\.test as carol;/);
        const stored = JSON.parse(
          await Deno.readTextFile(`${home}/ucloud/config.json`),
        );
        assert.deepEqual(Object.keys(stored).sort(), [
          "api",
          "name",
          "realm",
          "seed",
        ]);
        assert.equal(stored.api, api);
        secrets.add(stored.seed);
        assert.ok(
          !login.out.includes(stored.seed) && !login.err.includes(stored.seed),
        );
        for (const f of ["config.json", "token.json"]) {
          const st = await Deno.stat(`${home}/ucloud/${f}`);
          assert.equal(st.mode! & 0o777, 0o600, f);
        }
        const afterLogin = exchanges;
        assert.equal(afterLogin, 1);
        // The CLI's TOTP (the shared core/totp_token.ts) agrees with oathtool.
        const at = Date.now();
        assert.equal(
          await cliTotp(stored.seed, at),
          await oathtool(stored.seed, at),
        );
        // Later commands reuse the cached bearer token: no new exchange.
        const who = await cli(["whoami"]);
        assert.equal(who.code, 0, who.err);
        assert.equal(who.out, "carol\n");
        const list = await cli(["vm", "list", "--json"]);
        assert.equal(list.code, 0, list.err);
        const items = JSON.parse(list.out).items as { owner: string }[];
        assert.ok(items.every((v) => v.owner === "carol"));
        assert.equal(exchanges, afterLogin);
        // A revoked cached token is replaced with a fresh TOTP exchange.
        const cached = JSON.parse(
          await Deno.readTextFile(`${home}/ucloud/token.json`),
        );
        secrets.add(cached.token);
        assert.ok(await identity.bearer.revoke(cached.token));
        const again = await cli(["whoami", "--json"]);
        assert.equal(again.code, 0, again.err);
        assert.equal(JSON.parse(again.out).name, "carol");
        assert.equal(exchanges, afterLogin + 1);
        // Users cannot reach admin-only commands; without a login: 401.
        const hosts = await cli(["host", "list"]);
        assert.equal(hosts.code, 1);
        assert.match(hosts.err, /not an admin/);
        assert.equal((await cli(["logout"])).code, 0);
        const anon = await cli(["whoami", "--api", api]);
        assert.equal(anon.code, 1);
        assert.match(anon.err, /ucloud login/);
      });

      await step("no answer or log line holds a seed or a token", () => {
        assertNoLeaks(secrets, answers, log.lines);
        // The steps above made 33 answers (the matrix's file makes over 100).
        assert.ok(answers.length > 30);
        return Promise.resolve();
      });
    }),
});
