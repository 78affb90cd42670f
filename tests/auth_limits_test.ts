/**
 * Failure limits of the real app behind a reverse proxy (real slapd, real
 * etcd, `api.trustedProxies`): X-Forwarded-For names the client only when
 * the proxy sends it, one client's failures refuse nobody else, a valid
 * bearer token is never refused for its address's failures, a name in
 * back-off gets in once the back-off has passed, and an IPv6 /64 is one
 * address.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { createIdentity } from "../api/identity.ts";
import { parseConfig } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { importHostKey, newHostKey } from "../core/secrets.ts";
import { Store } from "../core/store.ts";
import { captureLog, oathtool } from "./helpers/otp.ts";
import {
  BASE_DN,
  SERVICE_DN,
  SERVICE_PW,
  startSlapd,
  userLdif,
} from "./helpers/slapd.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };
const PROXY = "2001:db8:ffff::1";
const USERS = ["alice", "bob", "carol", "dave", "erin", "frank"];
const BAD_BEARER = "uc1.eyJzdWIiOiJ4In0." + "A".repeat(43);

Deno.test({
  name: "auth limits behind a trusted proxy: per client, per /64, back-off",
  ...noSanitize,
  async fn(t) {
    const slapd = await startSlapd();
    const dir = await Deno.makeTempDir({ prefix: "ucloud-limits-test-" });
    const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
    const store = Store.connect({
      endpoints: [etcd.endpoint],
      prefix: "/limits",
    });
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    try {
      await slapd.add(USERS.map((u) => userLdif(u, `${u}-pw`)).join("\n"));
      const config = parseConfig({
        stateDir: dir,
        etcd: { endpoints: [etcd.endpoint], prefix: "/limits" },
        api: { trustedProxies: [PROXY, "10.0.0.0/8"] },
        identity: {
          ldap: {
            url: slapd.url,
            baseDn: BASE_DN,
            bindDn: SERVICE_DN,
            bindPassword: SERVICE_PW,
          },
          rateLimit: { perName: { backoffBaseSeconds: 0.5 } },
        },
      }, () => undefined);
      const log = captureLog();
      const identity = await createIdentity({
        store,
        config,
        keys: await importHostKey(newHostKey()),
        log,
      });
      const app = createApp({ store, config, identity });

      /** A request from `client` through the proxy (or directly: `via`). */
      const call = async (
        path: string,
        client: string,
        { headers = {}, json, via = PROXY }: {
          headers?: Record<string, string>;
          json?: unknown;
          via?: string;
        } = {},
      ) => {
        const h: Record<string, string> = {
          "x-forwarded-for": `198.51.100.66, ${client}`,
          ...headers,
        };
        if (json !== undefined) h["content-type"] = "application/json";
        const res = await app.request(path, {
          method: json === undefined && path !== "/v1/auth/token"
            ? "GET"
            : "POST",
          headers: h,
          body: json === undefined ? undefined : JSON.stringify(json),
        }, { remoteAddr: { hostname: via } });
        const text = await res.text();
        return { status: res.status, text, headers: res.headers };
      };
      const seeds: Record<string, string> = {};
      for (const u of USERS) {
        const r = await call("/v1/auth/seed", "2001:db8:5eed::1", {
          json: { name: u, password: `${u}-pw` },
        });
        assert.equal(r.status, 201, r.text);
        seeds[u] = JSON.parse(r.text).seed;
      }
      /** TOTP headers; `offset` picks another accepted step (no replay). */
      const otp = async (name: string, offset = 0, wrong = false) => {
        const token = await oathtool(seeds[name], Date.now() + offset * 30_000);
        return {
          "X-Otp-Name": name,
          "X-Otp-Realm": "ucloud",
          "X-Otp-Token": wrong
            ? String((Number(token) + 1) % 1e6).padStart(6, "0")
            : token,
        };
      };
      const whoami = (client: string, headers: Record<string, string>) =>
        call("/v1/auth/whoami", client, { headers });
      const badBearers = async (client: string, n: number) => {
        for (let i = 0; i < n; i++) {
          const r = await whoami(client, {
            authorization: `Bearer ${BAD_BEARER}`,
          });
          assert.equal(r.status, 401, r.text);
        }
      };

      const X = "2001:db8:aaaa:1::10";
      const Y = "2001:db8:cccc:1::20";
      let aliceBearer = "";
      await step(
        "a valid bearer token is accepted after 60 bad ones from its address",
        async () => {
          const r = await call("/v1/auth/token", X, {
            headers: await otp("alice"),
          });
          assert.equal(r.status, 200, r.text);
          aliceBearer = JSON.parse(r.text).token;
          await badBearers(X, 60);
          const me = await whoami(X, {
            authorization: `Bearer ${aliceBearer}`,
          });
          assert.equal(me.status, 200, me.text);
        },
      );

      await step(
        "through the proxy, client X's failures refuse nothing of client Y",
        async () => {
          // The failures were logged with X's address, not the proxy's.
          const refused = log.lines.map((l) => JSON.parse(l)).filter((l) =>
            l.msg === "bearer token refused"
          );
          assert.equal(refused.length, 60);
          assert.ok(refused.every((l) => l.address === X));
          // X is noisy: one failure of dave from X backs dave off at once.
          assert.equal(
            (await whoami(X, await otp("dave", 0, true))).status,
            401,
          );
          assert.equal((await whoami(Y, await otp("dave"))).status, 429);
          // Y is quiet: carol's failure from Y is one of her free ones.
          assert.equal(
            (await whoami(Y, await otp("carol", 0, true))).status,
            401,
          );
          assert.equal((await whoami(Y, await otp("carol"))).status, 200);
          const me = await whoami(Y, {
            authorization: `Bearer ${aliceBearer}`,
          });
          assert.equal(me.status, 200, me.text);
        },
      );

      await step(
        "X-Forwarded-For from a peer that is no trusted proxy is ignored",
        async () => {
          const r = await whoami(X, {
            authorization: `Bearer ${BAD_BEARER}`,
          });
          assert.equal(r.status, 401);
          const direct = await call("/v1/auth/whoami", X, {
            via: "192.0.2.50",
            headers: { authorization: `Bearer ${BAD_BEARER}` },
          });
          assert.equal(direct.status, 401);
          const last = JSON.parse(log.lines.at(-1)!);
          assert.equal(last.address, "192.0.2.50");
        },
      );

      await step(
        "after 5 bad TOTPs of a name, a valid TOTP of it gets in once the back-off passed",
        async () => {
          const Z = "203.0.113.40";
          for (let i = 0; i < 5; i++) {
            assert.equal(
              (await whoami(Z, await otp("bob", 0, true))).status,
              401,
            );
          }
          const limited = await whoami(Z, await otp("bob"));
          assert.equal(limited.status, 429, limited.text);
          assert.equal(limited.headers.get("retry-after"), "1");
          const start = performance.now();
          let status = 429;
          while (status === 429 && performance.now() - start < 30_000) {
            await new Promise((r) => setTimeout(r, 100));
            status = (await whoami(Z, await otp("bob"))).status;
          }
          assert.equal(status, 200);
        },
      );

      await step(
        "two addresses of one /64 share a bucket; the next /64 does not",
        async () => {
          await badBearers("2001:db8:bbbb:1::1", 25);
          await badBearers("2001:db8:bbbb:1:ffff::2", 25);
          // The /64 is noisy: erin backs off at her first failure from it.
          const e = await whoami(
            "2001:db8:bbbb:1::3",
            await otp("erin", 0, true),
          );
          assert.equal(e.status, 401);
          assert.equal((await whoami(Y, await otp("erin"))).status, 429);
          const f = await whoami(
            "2001:db8:bbbb:2::1",
            await otp("frank", 0, true),
          );
          assert.equal(f.status, 401);
          assert.equal((await whoami(Y, await otp("frank"))).status, 200);
        },
      );
    } finally {
      store.close();
      await slapd.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
