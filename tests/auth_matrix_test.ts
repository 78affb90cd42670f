/**
 * The authentication and ownership matrix of the real app with the identity
 * auth (real slapd, real etcd): for every operation of the OpenAPI document
 * (iterated, so a new endpoint cannot be forgotten: it must be added to
 * `EXPECT`), no credentials, a wrong token, a replayed token, an expired or
 * revoked bearer token are 401; a user on another user's VM or task gets 404
 * and on admin-only endpoints 403 (also on another user's quota; their own
 * they see but cannot set); an admin is never 401/403. Every refused
 * request leaves etcd exactly as it was. No response body or log line holds a
 * seed or a token, except the answer that created or issued it. Seeds,
 * tokens, sessions and the CLI login are tests/auth_identity_test.ts.
 */
import { oathtool } from "./helpers/otp.ts";
import assert from "node:assert/strict";
import { type Answer, EXPECT } from "./helpers/authz_expect.ts";
import { noSanitize } from "./helpers/api.ts";
import { withAuthzEnv } from "./helpers/authz_env.ts";
import { matrixTargets } from "./helpers/authz_targets.ts";
import { tenantSteps } from "./helpers/authz_tenant.ts";
import { assertNoLeaks } from "./helpers/secrets_log.ts";

Deno.test({
  name: "auth matrix: every endpoint, every credential, every owner",
  ...noSanitize,
  fn: (t) =>
    withAuthzEnv(t, async (env) => {
      const {
        step,
        log,
        identity,
        answers,
        secrets,
        seeds,
        call,
        totpHeaders,
        bearerHeaders,
        createSeed,
        exchange,
      } = env;
      // The callers of the matrix: alice (admin) and bob, with bearer tokens.
      await createSeed("alice", "alice-pw");
      await createSeed("bob", "bob-pw");
      const aliceBearer = await exchange("alice", await oathtool(seeds.alice));
      const bobUsedToken = await oathtool(seeds.bob);
      const bobBearer = await exchange("bob", bobUsedToken);
      const {
        aliceNet,
        bobNet,
        aliceVm,
        aliceTask,
        bobVm,
        wrongToken,
        badCredentials,
        ops,
        url,
        bodyOf,
        refused,
      } = await matrixTargets(env, { aliceBearer, bobBearer, bobUsedToken });

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

      await tenantSteps(env, { aliceBearer, bobBearer, bobVm });

      await step(
        "filters and continue tokens show a user only their own",
        async () => {
          const bob = { headers: bearerHeaders(bobBearer) };
          const admin = { headers: bearerHeaders(aliceBearer) };
          const items = (r: Answer) =>
            (r.body as { items: { id: string; owner: string }[] }).items;
          const none = await call("GET", "/v1/vms?owner=alice", bob);
          assert.equal(none.status, 200, none.text);
          assert.deepEqual(items(none), []);
          const tasks = await call("GET", `/v1/tasks?vm=${aliceVm}`, bob);
          assert.equal(tasks.status, 200, tasks.text);
          assert.deepEqual(items(tasks), []);
          // Every token of the admin's listing, in bob's hands: only bob's.
          for (const path of ["/v1/vms", "/v1/tasks"]) {
            let token: string | null = null;
            do {
              const q: string = token ? `&continue=${token}` : "";
              const a = await call("GET", `${path}?limit=1${q}`, admin);
              token = (a.body as { continue: string | null }).continue;
              if (!token) break;
              assert.ok(!token.includes(aliceVm) && !token.includes(bobVm));
              const b = await call("GET", `${path}?continue=${token}`, bob);
              assert.equal(b.status, 200, b.text);
              for (const i of items(b)) assert.equal(i.owner, "bob", path);
            } while (token);
          }
        },
      );

      await step(
        "quota: a user sees their own usage only and cannot set their own quota; an admin can",
        async () => {
          const path = "/v1/users/bob/quota";
          const own = await call("GET", path, {
            headers: bearerHeaders(bobBearer),
          });
          assert.equal(own.status, 200, own.text);
          const view = own.body as {
            user: string;
            usage: { vms: number };
            limits: { vms: number | null };
          };
          assert.equal(view.user, "bob");
          assert.ok(view.usage.vms >= 1, own.text);
          const op = { method: "PUT", key: "PUT /v1/users/{name}/quota" };
          await refused("bob on his own", op, path, 403, {
            headers: bearerHeaders(bobBearer),
            json: { vms: 1000 },
          });
          const set = await call("PUT", path, {
            headers: bearerHeaders(aliceBearer),
            json: { vms: 1000, cpus: null },
          });
          assert.equal(set.status, 200, set.text);
          const after = await call("GET", path, {
            headers: bearerHeaders(bobBearer),
          });
          assert.equal(
            (after.body as { limits: { vms: number } }).limits.vms,
            1000,
          );
          const bad = await call("PUT", path, {
            headers: bearerHeaders(aliceBearer),
            json: { cpus: -1 },
          });
          assert.equal(bad.status, 400, bad.text);
          assert.equal(
            (bad.body as { error: { field: string } }).error.field,
            "cpus",
          );
        },
      );

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
              // An admin rotates a user's seed without its password or token.
              await createSeed("bob", "", true, {
                headers: bearerHeaders(aliceBearer),
              });
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

      await step("no answer or log line holds a seed or a token", () => {
        assertNoLeaks(secrets, answers, log.lines);
        assert.ok(answers.length > 100);
        return Promise.resolve();
      });
    }),
});
