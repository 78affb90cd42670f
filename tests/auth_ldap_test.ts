/**
 * Identity settings and the LDAP directory against a real slapd: defaults
 * and bad settings, lookups of users, groups and the admin role, password
 * binds, and UnavailableError while slapd is down or refuses the service.
 */
import assert from "node:assert/strict";
import { UnavailableError } from "../core/errors.ts";
import { Directory, IdentityConfig } from "../core/ldap.ts";
import { BASE_DN } from "./helpers/slapd.ts";
import { ldapConfig } from "./helpers/identity_fixtures.ts";
import { withIdentityEnv } from "./helpers/identity_env.ts";
import { noSanitize } from "./helpers/api.ts";

Deno.test({
  name:
    "identity: LDAP, TOTP, etcd stores, bearer tokens, middleware: LDAP directory",
  ...noSanitize,
  fn: (t) =>
    withIdentityEnv(t, async ({ slapd, step, up, dirc }) => {
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
    }),
});
