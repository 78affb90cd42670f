/**
 * TOTP against a real etcd: oathtool tokens accepted once, old ones and
 * other seeds refused, replays refused across API replicas and under
 * concurrent claims, seeds kept encrypted with tampering detected.
 */
import { oathtool } from "./helpers/otp.ts";
import assert from "node:assert/strict";
import { z } from "zod";
import { UnavailableError } from "../core/errors.ts";
import {
  importHostKey,
  newHostKey,
  newSeed,
  SecretDecryptError,
} from "../core/secrets.ts";
import {
  EtcdReplayStore,
  EtcdSeedStore,
  LocalVerifier,
  MemoryReplayStore,
  MemorySeedStore,
  otpKeys,
  SeedDoc,
} from "../core/totp.ts";
import { otpauth } from "./helpers/identity_fixtures.ts";
import { withIdentityEnv } from "./helpers/identity_env.ts";
import { noSanitize } from "./helpers/api.ts";

Deno.test({
  name:
    "identity: LDAP, TOTP, etcd stores, bearer tokens, middleware: TOTP and its stores",
  ...noSanitize,
  fn: (t) =>
    withIdentityEnv(t, async ({ connect, lastPrefix, step }) => {
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
            replay: new EtcdReplayStore(connect(lastPrefix())),
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
          const r2 = new EtcdReplayStore(connect(lastPrefix()));
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
    }),
});
