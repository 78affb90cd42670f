/**
 * Bearer tokens: signed, verified, expired and revoked, and the etcd
 * revocation list seen by every replica until the token expires.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { z } from "zod";
import {
  EtcdRevocationList,
  MemoryRevocationList,
  revokedKey,
} from "../api/revocations.ts";
import { BearerTokens } from "../api/tokens.ts";
import { importHostKey, newHostKey } from "../core/secrets.ts";
import { withIdentityEnv } from "./helpers/identity_env.ts";
import { noSanitize } from "./helpers/api.ts";

Deno.test({
  name:
    "identity: LDAP, TOTP, etcd stores, bearer tokens, middleware: bearer tokens",
  ...noSanitize,
  fn: (t) =>
    withIdentityEnv(t, async ({ connect, step }) => {
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
    }),
});
