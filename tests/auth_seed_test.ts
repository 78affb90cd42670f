/**
 * `POST /v1/auth/seed` on two API replicas sharing one etcd (real slapd):
 * the first enrollment takes the LDAP password alone and is recorded (the
 * seed document names who, when and from where; `GET /v1/auth/seed/{name}`
 * shows it to admins; a log line); rotating takes the current TOTP token
 * too, or an authenticated admin; password attempts are limited per user in
 * etcd, so neither another replica nor another address gets more, and the
 * record of attempts is bound to a lease.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { createApp } from "../api/app.ts";
import { createIdentity } from "../api/identity.ts";
import { Attempts } from "../core/attempt_limit.ts";
import { parseConfig } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { importHostKey, newHostKey } from "../core/secrets.ts";
import { Store } from "../core/store.ts";
import { EtcdSeedStore, SeedDoc } from "../core/totp.ts";
import { captureLog, oathtool } from "./helpers/otp.ts";
import {
  BASE_DN,
  groupLdif,
  SERVICE_DN,
  SERVICE_PW,
  startSlapd,
  userLdif,
} from "./helpers/slapd.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };
const USERS = ["alice", "bob", "carol", "dave"];
/** identity.rateLimit.seedPerUser.limit of this test. */
const LIMIT = 8;

Deno.test({
  name: "seed enrollment, rotation and its per-user limit on two API replicas",
  ...noSanitize,
  async fn(t) {
    const slapd = await startSlapd();
    const dir = await Deno.makeTempDir({ prefix: "ucloud-seed-test-" });
    const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
    const stores = [0, 1].map(() =>
      Store.connect({ endpoints: [etcd.endpoint], prefix: "/seed" })
    );
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    try {
      await slapd.add(
        [
          ...USERS.map((u) => userLdif(u, `${u}-pw`)),
          groupLdif("ucloud-admins", ["alice"]),
        ].join("\n"),
      );
      const config = parseConfig({
        stateDir: dir,
        etcd: { endpoints: [etcd.endpoint], prefix: "/seed" },
        identity: {
          ldap: {
            url: slapd.url,
            baseDn: BASE_DN,
            bindDn: SERVICE_DN,
            bindPassword: SERVICE_PW,
          },
          // The per-replica back-off stays out of the way: etcd's limit counts.
          rateLimit: {
            perName: { limit: 1000, windowSeconds: 60 },
            seedPerUser: { limit: LIMIT, windowSeconds: 600 },
          },
        },
      }, () => undefined);
      const hostKeys = await importHostKey(newHostKey());
      const log = captureLog();
      const apps = await Promise.all(stores.map(async (store) => {
        const identity = await createIdentity({
          store,
          config,
          keys: hostKeys,
          log,
        });
        return createApp({ store, config, identity, log });
      }));
      const [store] = stores;
      let n = 0;
      /** A request to replica `replica`, each from a new address. */
      const call = async (
        replica: number,
        method: string,
        path: string,
        { json, headers = {}, from = `2001:db8:${(++n).toString(16)}::1` }: {
          json?: unknown;
          headers?: Record<string, string>;
          from?: string;
        } = {},
      ) => {
        const h: Record<string, string> = { ...headers };
        if (json !== undefined) h["content-type"] = "application/json";
        const res = await apps[replica].request(path, {
          method,
          headers: h,
          body: json === undefined ? undefined : JSON.stringify(json),
        }, { remoteAddr: { hostname: from } });
        const text = await res.text();
        return {
          status: res.status,
          text,
          headers: res.headers,
          body: text.startsWith("{") ? JSON.parse(text) : null,
        };
      };
      const enroll = async (name: string, replica = 0, from?: string) => {
        const r = await call(replica, "POST", "/v1/auth/seed", {
          json: { name, password: `${name}-pw` },
          from,
        });
        assert.equal(r.status, 201, r.text);
        return r.body.seed as string;
      };
      const bearerOf = async (name: string, seed: string) => {
        const r = await call(0, "POST", "/v1/auth/token", {
          headers: {
            "X-Otp-Name": name,
            "X-Otp-Realm": "ucloud",
            "X-Otp-Token": await oathtool(seed),
          },
        });
        assert.equal(r.status, 200, r.text);
        return { authorization: `Bearer ${r.body.token}` };
      };
      const whoami = async (name: string, seed: string, atMs = Date.now()) =>
        (await call(1, "GET", "/v1/auth/whoami", {
          headers: {
            "X-Otp-Name": name,
            "X-Otp-Realm": "ucloud",
            "X-Otp-Token": await oathtool(seed, atMs),
          },
        })).status;
      const stored = new EtcdSeedStore(store, hostKeys.seal);
      const seedDoc = async (name: string) =>
        (await store.get(keys.otpSeed("ucloud", name), SeedDoc))!;

      let bobSeed = "";
      let admin: Record<string, string> = {};
      let bobBearer: Record<string, string> = {};
      await step(
        "the first enrollment takes the password alone and is recorded",
        async () => {
          bobSeed = await enroll("bob", 0, "2001:db8:b0b::7");
          admin = await bearerOf("alice", await enroll("alice", 1));
          const r = await call(1, "GET", "/v1/auth/seed/bob", {
            headers: admin,
          });
          assert.equal(r.status, 200, r.text);
          assert.equal(r.body.enrolledBy, "bob");
          assert.equal(r.body.enrolledFrom, "2001:db8:b0b::7");
          assert.ok(Date.parse(r.body.enrolledAt) > 0);
          assert.equal(r.body.rotatedAt, undefined);
          assert.equal(r.body.seed, undefined);
          assert.ok(!r.text.includes(bobSeed));
          const line = log.lines.map((l) => JSON.parse(l)).find((l) =>
            l.msg === "seed created" && l.name === "bob"
          );
          assert.equal(line?.by, "bob");
          assert.equal(line?.address, "2001:db8:b0b::7");
          // Only admins read records.
          bobBearer = await bearerOf("bob", bobSeed);
          const denied = await call(0, "GET", "/v1/auth/seed/alice", {
            headers: bobBearer,
          });
          assert.equal(denied.status, 403, denied.text);
          assert.equal(
            (await call(0, "GET", "/v1/auth/seed/carol", { headers: admin }))
              .status,
            404,
          );
        },
      );

      await step(
        "rotating needs the current TOTP token or an admin",
        async () => {
          const before = await seedDoc("bob");
          const refused = [
            // The password alone, as before this change.
            { name: "bob", password: "bob-pw", replace: true },
            { name: "bob", password: "bob-pw", replace: true, token: "000000" },
            { name: "bob", password: "wrong", replace: true, token: "123456" },
          ];
          for (const json of refused) {
            const r = await call(0, "POST", "/v1/auth/seed", { json });
            assert.equal(r.status, 401, `${JSON.stringify(json)}: ${r.text}`);
          }
          // bob's bearer token alone, and an admin acting for bob (bob's rights).
          for (const headers of [bobBearer, { ...admin, "x-act-as": "bob" }]) {
            const r = await call(1, "POST", "/v1/auth/seed", {
              headers,
              json: { name: "bob", replace: true },
            });
            assert.equal(r.status, 401, r.text);
          }
          assert.deepEqual(
            await seedDoc("bob"),
            before,
            "refusals change nothing",
          );

          // The password and the current token of the old seed.
          const r = await call(1, "POST", "/v1/auth/seed", {
            json: {
              name: "bob",
              password: "bob-pw",
              replace: true,
              token: await oathtool(bobSeed, Date.now() + 30_000),
            },
            from: "2001:db8:b0b::9",
          });
          assert.equal(r.status, 201, r.text);
          const fresh = r.body.seed as string;
          assert.notEqual(fresh, bobSeed);
          assert.equal(await stored.get("ucloud", "bob"), fresh);
          assert.equal(await whoami("bob", bobSeed, Date.now() - 30_000), 401);
          let rec =
            (await call(0, "GET", "/v1/auth/seed/bob", { headers: admin }))
              .body;
          assert.equal(rec.enrolledAt, before.value.enrolledAt);
          assert.equal(rec.enrolledFrom, "2001:db8:b0b::7");
          assert.equal(rec.rotatedBy, "bob");
          assert.equal(rec.rotatedFrom, "2001:db8:b0b::9");
          assert.equal(rec.rotations, 1);

          // An admin rotates it without the password or a token.
          const byAdmin = await call(0, "POST", "/v1/auth/seed", {
            headers: admin,
            json: { name: "bob", replace: true },
          });
          assert.equal(byAdmin.status, 201, byAdmin.text);
          assert.equal(await stored.get("ucloud", "bob"), byAdmin.body.seed);
          rec = (await call(1, "GET", "/v1/auth/seed/bob", { headers: admin }))
            .body;
          assert.equal(rec.rotatedBy, "alice");
          assert.equal(rec.rotations, 2);
          const line = log.lines.map((l) => JSON.parse(l)).findLast((l) =>
            l.msg === "seed rotated" && l.name === "bob"
          );
          assert.equal(line?.by, "alice");
          // No answer but the creating one, no log line, holds a seed.
          for (const s of [bobSeed, fresh, byAdmin.body.seed]) {
            assert.ok(!log.lines.some((l) => l.includes(s)));
          }
        },
      );

      await step(
        "password attempts are limited per user across replicas and addresses",
        async () => {
          // Every attempt counts, each from another address, on both replicas.
          for (let i = 0; i < LIMIT; i++) {
            const r = await call(i % 2, "POST", "/v1/auth/seed", {
              json: { name: "carol", password: `guess-${i}` },
            });
            assert.equal(r.status, 401, `attempt ${i}: ${r.text}`);
          }
          for (const replica of [0, 1]) {
            const r = await call(replica, "POST", "/v1/auth/seed", {
              json: { name: "carol", password: "carol-pw" },
            });
            assert.equal(r.status, 429, `replica ${replica}: ${r.text}`);
            const after = Number(r.headers.get("retry-after"));
            assert.ok(after > 0 && after <= 600, `Retry-After ${after}`);
          }
          assert.equal(
            await store.get(keys.otpSeed("ucloud", "carol"), SeedDoc),
            null,
          );
          // Another user is not affected; an admin is not limited.
          await enroll("dave", 1);
          const forCarol = await call(1, "POST", "/v1/auth/seed", {
            headers: admin,
            json: { name: "carol" },
          });
          assert.equal(forCarol.status, 201, forCarol.text);

          // The record is one small key per name, bound to a shared lease.
          const { items } = await store.list(keys.attemptsOf("seed"), Attempts);
          const carol = items.find((kv) => kv.key.endsWith("/carol@ucloud"));
          assert.ok(carol);
          assert.equal(carol.value.at.length, LIMIT);
          for (const kv of items) assert.notEqual(kv.lease, "0", kv.key);
          const ttl = await store.client.leaseClient.leaseTimeToLive({
            ID: carol.lease,
          });
          assert.ok(
            Number(ttl.TTL) > 0 && Number(ttl.TTL) <= 600 + 60,
            `lease TTL ${ttl.TTL}`,
          );
          // A replica's keys of the same minute share its lease.
          const leases = new Set(items.map((kv) => kv.lease));
          assert.ok(leases.size <= 2, `${leases.size} leases`);
        },
      );
      // Nothing else in etcd holds attempts.
      const all = await store.list("", z.unknown());
      assert.ok(
        all.items.filter((kv) => kv.key.startsWith("attempts/")).every((kv) =>
          kv.key.startsWith("attempts/seed/")
        ),
      );
    } finally {
      for (const s of stores) s.close();
      await slapd.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
