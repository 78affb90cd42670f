/**
 * The authentication and ownership matrix of the real app with the identity
 * auth (real slapd, real etcd): for every operation of the OpenAPI document
 * (iterated, so a new endpoint cannot be forgotten: it must be added to
 * `EXPECT`), no credentials, a wrong token, a replayed token, an expired or
 * revoked bearer token are 401; a user on another user's VM or task gets 404
 * and on admin-only endpoints 403; an admin is never 401/403. Every refused
 * request leaves etcd exactly as it was. No response body or log line holds a
 * seed or a token, except the answer that created or issued it.
 */
import { captureLog, oathtool } from "./helpers/otp.ts";
import { SecretSet } from "./helpers/secrets_log.ts";
import assert from "node:assert/strict";
import { MemoryRevocationList } from "../api/revocations.ts";
import { BearerTokens } from "../api/tokens.ts";
import { createApp } from "../api/app.ts";
import { createIdentity } from "../api/identity.ts";
import { main as cliMain } from "../cli/main.ts";
import { totp as cliTotp } from "../core/totp_token.ts";
import { parseConfig } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { importHostKey, newHostKey } from "../core/secrets.ts";
import { Store } from "../core/store.ts";
import { dump } from "./helpers/cluster.ts";
import {
  BASE_DN,
  groupLdif,
  SERVICE_DN,
  SERVICE_PW,
  startSlapd,
  userLdif,
} from "./helpers/slapd.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };

/** What a plain user (bob) gets on an operation aimed at alice's things. */
type UserExpect =
  | "forbidden" // admin-only: 403
  | "notFound" // alice's VM or task: 404
  | "refused" // 401 by design (bearer cannot extend itself, wrong password)
  | "own"; // works, on bob's own things only

/** Every operation of the API; the test fails when one is missing here. */
const EXPECT: Record<string, UserExpect> = {
  "POST /v1/vms": "own",
  "GET /v1/vms": "own",
  "GET /v1/vms/{id}": "notFound",
  "DELETE /v1/vms/{id}": "notFound",
  "POST /v1/vms/{id}/stop": "notFound",
  "POST /v1/vms/{id}/start": "notFound",
  "POST /v1/vms/{id}/reboot": "notFound",
  "POST /v1/vms/{id}/nics": "notFound",
  "DELETE /v1/vms/{id}/nics/{slot}": "notFound",
  "POST /v1/networks": "own",
  "GET /v1/networks": "own",
  "GET /v1/networks/{id}": "notFound",
  "DELETE /v1/networks/{id}": "notFound",
  "GET /v1/hosts": "forbidden",
  "POST /v1/hosts/{name}/drain": "forbidden",
  "POST /v1/hosts/{name}/enable": "forbidden",
  "POST /v1/hosts/{name}/shutdown": "forbidden",
  "GET /v1/tasks": "own",
  "GET /v1/tasks/{id}": "notFound",
  "GET /v1/tasks/{id}/drain": "notFound",
  "POST /v1/maintenance/rebalance": "forbidden",
  "GET /v1/maintenance/rebalance": "forbidden",
  "POST /v1/auth/token": "refused",
  "POST /v1/auth/seed": "refused",
  "GET /v1/auth/whoami": "own",
  "POST /v1/auth/session": "refused",
  "DELETE /v1/auth/session": "own",
  "POST /v1/auth/revoke": "own",
  "POST /v1/auth/services": "forbidden",
};

interface Answer {
  status: number;
  text: string;
  body: unknown;
  headers: Headers;
}

Deno.test({
  name: "auth matrix: every endpoint, every credential, every owner",
  ...noSanitize,
  async fn(t) {
    const slapd = await startSlapd();
    const dir = await Deno.makeTempDir({ prefix: "ucloud-authz-test-" });
    const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
    const store = Store.connect({
      endpoints: [etcd.endpoint],
      prefix: "/authz",
    });
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    try {
      await slapd.add(
        [
          userLdif("alice", "alice-pw"),
          userLdif("bob", "bob-pw"),
          // Used only by the CLI step: none of its TOTP steps is used yet.
          userLdif("carol", "carol-pw"),
          groupLdif("ucloud-admins", ["alice"]),
        ].join("\n"),
      );
      const config = parseConfig({
        stateDir: dir,
        etcd: { endpoints: [etcd.endpoint], prefix: "/authz" },
        identity: {
          ldap: {
            url: slapd.url,
            baseDn: BASE_DN,
            bindDn: SERVICE_DN,
            bindPassword: SERVICE_PW,
            timeoutMs: 2000,
          },
          otp: { serviceRealms: { svc: { admin: false } } },
          // The matrix fails on purpose many times per name.
          rateLimit: {
            perName: { limit: 10_000, windowSeconds: 300 },
            perAddress: { limit: 10_000, windowSeconds: 300 },
          },
        },
      }, () => undefined);
      assert.equal(config.identity.enabled, true);
      const hostKeys = await importHostKey(newHostKey());
      const log = captureLog();
      const identity = await createIdentity({
        store,
        config,
        keys: hostKeys,
        log,
      });
      const app = createApp({ store, config, identity });

      /** Every answer, with the secrets it may legitimately hold. */
      const answers: { text: string; allowed: string[] }[] = [];
      const secrets = new SecretSet();
      const call = async (
        method: string,
        path: string,
        { headers = {}, json }: {
          headers?: Record<string, string>;
          json?: unknown;
        } = {},
      ): Promise<Answer> => {
        const h: Record<string, string> = { ...headers };
        if (json !== undefined) h["content-type"] = "application/json";
        const res = await app.request(path, {
          method,
          headers: h,
          body: json === undefined ? undefined : JSON.stringify(json),
        });
        const text = await res.text();
        let body: unknown = null;
        try {
          body = JSON.parse(text);
        } catch { /* not JSON */ }
        const a = { status: res.status, text, body, headers: res.headers };
        answers.push({ text, allowed: [] });
        return a;
      };
      const totpHeaders = (name: string, token: string) => ({
        "X-Otp-Name": name,
        "X-Otp-Realm": "ucloud",
        "X-Otp-Token": token,
      });
      const bearerHeaders = (token: string) => ({
        authorization: `Bearer ${token}`,
      });

      const seeds: Record<string, string> = {};
      const createSeed = async (
        name: string,
        password: string,
        replace = false,
      ) => {
        const r = await call("POST", "/v1/auth/seed", {
          json: { name, password, replace },
        });
        assert.equal(r.status, 201, r.text);
        const b = r.body as { seed: string; otpauthUri: string };
        assert.match(b.seed, /^[A-Z2-7]{32}$/);
        assert.ok(b.otpauthUri.startsWith("otpauth://totp/ucloud%3A"));
        answers[answers.length - 1].allowed.push(b.seed);
        secrets.add(b.seed);
        seeds[name] = b.seed;
        return b.seed;
      };
      const exchange = async (name: string, token: string) => {
        secrets.add(token);
        const r = await call("POST", "/v1/auth/token", {
          headers: totpHeaders(name, token),
        });
        assert.equal(r.status, 200, r.text);
        const b = r.body as { token: string; expiresIn: number };
        assert.equal(b.expiresIn, 900);
        answers[answers.length - 1].allowed.push(b.token);
        secrets.add(b.token);
        return b.token;
      };

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
        const rotated = await createSeed("bob", "bob-pw", true);
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
          headers: totpHeaders("bob", await oathtool(first)),
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

      const cookieOf = (token: string) => ({
        cookie: `ucloud_session=${token}`,
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

      // alice's network, VM and task (the things bob must not reach), bob's
      // own network and VM.
      const netOf = async (bearer: string) => {
        const r = await call("POST", "/v1/networks", {
          headers: bearerHeaders(bearer),
          json: { name: "lan" },
        });
        assert.equal(r.status, 201, r.text);
        return (r.body as { id: string }).id;
      };
      const aliceNet = await netOf(aliceBearer);
      const bobNet = await netOf(bobBearer);
      const vmBody = { name: "m", cpus: 1, memory: 128 };
      const made = await call("POST", "/v1/vms", {
        headers: bearerHeaders(aliceBearer),
        json: { ...vmBody, networks: [aliceNet] },
      });
      assert.equal(made.status, 201, made.text);
      const aliceVm = (made.body as { vm: { id: string } }).vm.id;
      const aliceTask = (made.body as { task: { id: string } }).task.id;
      const bobMade = await call("POST", "/v1/vms", {
        headers: bearerHeaders(bobBearer),
        json: { ...vmBody, name: "b", networks: [bobNet] },
      });
      assert.equal(bobMade.status, 201, bobMade.text);
      const bobVm = (bobMade.body as { vm: { id: string } }).vm.id;

      // Bad credentials of every kind.
      const now = Date.now();
      const valid = new Set(
        await Promise.all(
          [-30_000, 0, 30_000].map((d) => oathtool(seeds.bob, now + d)),
        ),
      );
      let wrongToken = await oathtool(seeds.bob, now - 3_600_000);
      while (valid.has(wrongToken)) {
        wrongToken = String((Number(wrongToken) + 1) % 1e6).padStart(6, "0");
      }
      secrets.add(wrongToken);
      const expired = await new BearerTokens({
        key: hostKeys.sign,
        revocations: new MemoryRevocationList(),
        ttlSeconds: 60,
        now: () => Date.now() - 3_600_000,
      }).issue({ name: "bob", admin: false });
      secrets.add(expired.token);
      const revoked =
        (await identity.bearer.issue({ name: "bob", admin: true }))
          .token;
      secrets.add(revoked);
      assert.ok(await identity.bearer.revoke(revoked));
      const bobSession =
        (await identity.sessions.issue({ name: "bob", admin: false })).token;
      secrets.add(bobSession);
      const forged = aliceBearer.slice(0, -4) +
        (aliceBearer.endsWith("AAAA") ? "BBBB" : "AAAA");
      const badCredentials: Record<string, Record<string, string>> = {
        "no credentials": {},
        "wrong token": totpHeaders("bob", wrongToken),
        "replayed token": totpHeaders("bob", bobUsedToken),
        "unknown user": totpHeaders("mallory", wrongToken),
        "expired bearer": bearerHeaders(expired.token),
        "revoked bearer": bearerHeaders(revoked),
        "forged bearer": bearerHeaders(forged),
        "session as bearer": bearerHeaders(bobSession),
        "bearer as session": cookieOf(aliceBearer),
      };

      const spec = (await call("GET", "/v1/openapi.json")).body as {
        paths: Record<string, Record<string, unknown>>;
      };
      const ops: { method: string; path: string; key: string }[] = [];
      for (const [path, item] of Object.entries(spec.paths)) {
        for (const method of Object.keys(item)) {
          ops.push({
            method: method.toUpperCase(),
            path,
            key: `${method.toUpperCase()} ${path}`,
          });
        }
      }
      assert.deepEqual(
        ops.map((o) => o.key).sort(),
        Object.keys(EXPECT).sort(),
        "every operation of the OpenAPI document must be in EXPECT",
      );

      /** The URL of an operation aimed at `vm` / `task` / network `net`. */
      const url = (path: string, vm: string, task: string, net: string) =>
        path.replace(
          "{id}",
          path.startsWith("/v1/vms")
            ? vm
            : path.startsWith("/v1/networks")
            ? net
            : task,
        ).replace("{name}", "h1").replace("{slot}", "0");
      /** The body an operation needs (without any credentials). */
      const bodyOf = (key: string, who: "bob" | "alice") =>
        key === "POST /v1/vms"
          ? { ...vmBody, name: `n-${crypto.randomUUID().slice(0, 8)}` }
          : key === "POST /v1/auth/seed" || key === "POST /v1/auth/session"
          ? { name: who }
          : key === "POST /v1/auth/services"
          ? { name: "backup", realm: "svc", replace: true }
          : key === "POST /v1/networks"
          ? { name: `n-${crypto.randomUUID().slice(0, 8)}` }
          : key === "POST /v1/vms/{id}/nics"
          ? { network: who === "alice" ? aliceNet : bobNet }
          : undefined;

      /** Calls and asserts the status; etcd must not change. */
      const refused = async (
        what: string,
        op: { method: string; key: string },
        path: string,
        status: number,
        init: { headers?: Record<string, string>; json?: unknown },
      ) => {
        const before = await dump(store);
        const r = await call(op.method, path, init);
        assert.equal(r.status, status, `${op.key} ${what}: ${r.text}`);
        assert.deepEqual(
          await dump(store),
          before,
          `${op.key} ${what} changed etcd`,
        );
        return r;
      };

      await step(
        "bad credentials are 401 everywhere, etcd unchanged",
        async () => {
          for (const op of ops) {
            const path = url(op.path, aliceVm, aliceTask, aliceNet);
            for (const [what, headers] of Object.entries(badCredentials)) {
              const r = await refused(what, op, path, 401, {
                headers,
                json: bodyOf(op.key, "bob"),
              });
              assert.equal(
                (r.body as { error: { code: string } }).error.code,
                "unauthorized",
              );
            }
            // Credentials in the JSON body (ungleich-otp clients) too.
            if (bodyOf(op.key, "bob") !== undefined) {
              await refused("wrong token in body", op, path, 401, {
                json: {
                  ...bodyOf(op.key, "bob"),
                  realm: "ucloud",
                  token: wrongToken,
                  ...(op.key === "POST /v1/auth/seed" ? {} : { name: "bob" }),
                },
              });
            }
          }
        },
      );

      await step("a user reaches only their own things", async () => {
        for (const op of ops) {
          const path = url(op.path, aliceVm, aliceTask, aliceNet);
          const init = {
            headers: bearerHeaders(bobBearer),
            json: bodyOf(op.key, "alice"),
          };
          const expect = EXPECT[op.key];
          if (expect === "forbidden") {
            await refused("as bob", op, path, 403, init);
          } else if (expect === "notFound") {
            await refused("as bob", op, path, 404, init);
          } else if (expect === "refused") {
            // The seed of alice with bob's password; a bearer for a bearer.
            await refused("as bob", op, path, 401, {
              ...init,
              json: op.key === "POST /v1/auth/seed"
                ? { name: "alice", password: "bob-pw", replace: true }
                : op.key === "POST /v1/auth/session"
                ? { name: "alice", password: "bob-pw", token: "123456" }
                : undefined,
            });
          } else {
            // Revoking must not cost bob the bearer token of later calls.
            const own = op.key === "POST /v1/auth/revoke"
              ? (await identity.bearer.issue({ name: "bob", admin: false }))
                .token
              : bobBearer;
            secrets.add(own);
            const r = await call(op.method, path, {
              ...init,
              headers: bearerHeaders(own),
              json: bodyOf(op.key, "bob"),
            });
            assert.ok(r.status < 300, `${op.key} as bob: ${r.text}`);
            const b = r.body as {
              items?: { owner: string; id: string }[];
              vm?: { owner: string };
              name?: string;
            };
            if (b.items) {
              assert.ok(b.items.length > 0, op.key);
              for (const i of b.items) assert.equal(i.owner, "bob", op.key);
              assert.ok(!b.items.some((i) => i.id === aliceVm));
              assert.ok(!b.items.some((i) => i.id === aliceTask));
            }
            if (b.vm) assert.equal(b.vm.owner, "bob");
            if (op.key === "GET /v1/auth/whoami") assert.equal(b.name, "bob");
          }
        }
      });

      await step(
        "an admin is never 401/403 (and sees others' VMs)",
        async () => {
          // Deletion last, so the other operations still find the VM.
          const order = [...ops].sort((a, b) =>
            Number(a.method === "DELETE") - Number(b.method === "DELETE")
          );
          for (const op of order) {
            const path = url(op.path, bobVm, aliceTask, bobNet);
            let r: Answer;
            if (op.key === "POST /v1/auth/token") {
              // A bearer token is only issued for TOTP; the next step's token.
              const token = await oathtool(seeds.alice, Date.now() + 30_000);
              secrets.add(token);
              r = await call(op.method, path, {
                headers: totpHeaders("alice", token),
              });
              const issued = (r.body as { token?: string }).token;
              if (issued) {
                answers[answers.length - 1].allowed.push(issued);
                secrets.add(issued);
              }
            } else if (op.key === "POST /v1/auth/seed") {
              await createSeed("alice", "alice-pw", true);
              continue;
            } else if (op.key === "POST /v1/auth/session") {
              continue; // its own step: each login uses up a TOTP step
            } else if (op.key === "POST /v1/auth/revoke") {
              const victim = await identity.bearer.issue({
                name: "bob",
                admin: false,
              });
              secrets.add(victim.token);
              r = await call(op.method, path, {
                headers: bearerHeaders(aliceBearer),
                json: { jti: victim.claims.jti },
              });
            } else if (op.key === "POST /v1/auth/services") {
              r = await call(op.method, path, {
                headers: bearerHeaders(aliceBearer),
                json: bodyOf(op.key, "alice"),
              });
              assert.equal(r.status, 201, r.text);
              const seed = (r.body as { seed: string }).seed;
              answers[answers.length - 1].allowed.push(seed);
              secrets.add(seed);
            } else {
              r = await call(op.method, path, {
                headers: bearerHeaders(aliceBearer),
                json: bodyOf(op.key, "alice"),
              });
            }
            assert.ok(
              r.status !== 401 && r.status !== 403 && r.status < 500,
              `${op.key} as admin: ${r.status} ${r.text}`,
            );
            if (op.key === "GET /v1/vms/{id}") {
              assert.equal(r.status, 200);
              assert.equal((r.body as { owner: string }).owner, "bob");
            }
            if (op.key === "GET /v1/vms") {
              const ids = (r.body as { items: { id: string }[] }).items.map((
                v,
              ) => v.id);
              assert.ok(ids.includes(aliceVm) && ids.includes(bobVm));
            }
          }
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
        const leaks = (text: string, allowed: string[]) =>
          [...secrets].filter((s) =>
            !allowed.includes(s) &&
            new RegExp(
              `(^|[^0-9A-Za-z])${s.replace(/\./g, "\\.")}([^0-9A-Za-z]|$)`,
            )
              .test(text)
          );
        for (const a of answers) {
          assert.deepEqual(leaks(a.text, a.allowed), [], a.text);
        }
        for (const line of log.lines) {
          assert.deepEqual(leaks(line, []), [], line);
        }
        assert.ok(answers.length > 100);
        return Promise.resolve();
      });
    } finally {
      store.close();
      await slapd.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
