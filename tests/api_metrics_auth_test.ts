/**
 * `/metrics` of the real app with identity on (real slapd, real etcd):
 * refused authentications by method and reason
 * (`ucloud_auth_failures_total`, api/auth_failures.ts), and the etcd
 * request times of the API's store by operation
 * (`ucloud_etcd_request_duration_seconds`, core/etcd_metrics.ts).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { createIdentity } from "../api/identity.ts";
import { parseConfig } from "../core/config.ts";
import { timeEtcdRequests } from "../core/etcd_metrics.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { importHostKey, newHostKey } from "../core/secrets.ts";
import { Store } from "../core/store.ts";
import { noSanitize } from "./helpers/api.ts";
import { promtoolCheck, sample, scrape } from "./helpers/api_metrics.ts";
import { waitFor } from "./helpers/cluster.ts";
import { oathtool } from "./helpers/otp.ts";
import {
  BASE_DN,
  SERVICE_DN,
  SERVICE_PW,
  startSlapd,
  userLdif,
} from "./helpers/slapd.ts";

const failures = (method: string, reason: string) =>
  `ucloud_auth_failures_total{method="${method}",reason="${reason}"}`;

Deno.test({
  name:
    "/metrics counts refused authentications by method and reason, and times the API's etcd requests by operation",
  ...noSanitize,
  async fn() {
    const slapd = await startSlapd();
    const dir = await Deno.makeTempDir({ prefix: "ucloud-authm-test-" });
    const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
    const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/m" });
    try {
      await slapd.add(
        ["alice", "bob"].map((u) => userLdif(u, `${u}-pw`)).join("\n"),
      );
      const config = parseConfig({
        stateDir: dir,
        etcd: { endpoints: [etcd.endpoint], prefix: "/m" },
        identity: {
          ldap: {
            url: slapd.url,
            baseDn: BASE_DN,
            bindDn: SERVICE_DN,
            bindPassword: SERVICE_PW,
          },
        },
      }, () => undefined);
      const identity = await createIdentity({
        store,
        config,
        keys: await importHostKey(newHostKey()),
      });
      const app = createApp({
        store,
        config,
        identity,
        metrics: timeEtcdRequests(store),
      });
      // Instrumenting twice changes nothing.
      assert.deepEqual(timeEtcdRequests(store), timeEtcdRequests(store));
      const call = async (
        path: string,
        headers: Record<string, string> = {},
        json?: unknown,
      ) => {
        const res = await app.request(path, {
          method: json === undefined ? "GET" : "POST",
          headers: json === undefined
            ? headers
            : { ...headers, "content-type": "application/json" },
          body: json === undefined ? undefined : JSON.stringify(json),
        }, { remoteAddr: { hostname: "2001:db8::7" } });
        return { status: res.status, text: await res.text() };
      };
      const seeds: Record<string, string> = {};
      for (const u of ["alice", "bob"]) {
        const r = await call("/v1/auth/seed", {}, {
          name: u,
          password: `${u}-pw`,
        });
        assert.equal(r.status, 201, r.text);
        seeds[u] = JSON.parse(r.text).seed;
      }
      const otp = async (name: string, wrong = false) => {
        const token = await oathtool(seeds[name]);
        return {
          "X-Otp-Name": name,
          "X-Otp-Realm": "ucloud",
          "X-Otp-Token": wrong
            ? String((Number(token) + 1) % 1e6).padStart(6, "0")
            : token,
        };
      };

      // Nothing refused yet: the family is there, without series.
      const quiet = await scrape(app);
      assert.ok(quiet.includes("# TYPE ucloud_auth_failures_total counter"));
      assert.equal(sample(quiet, failures("totp", "invalid")), undefined);

      assert.equal((await call("/v1/vms")).status, 401);
      assert.equal(
        (await call("/v1/vms", await otp("alice", true))).status,
        401,
      );
      const good = await otp("alice");
      assert.equal((await call("/v1/vms", good)).status, 200);
      assert.equal((await call("/v1/vms", good)).status, 401);
      assert.equal(
        (await call("/v1/vms", { authorization: "Basic eDp5" })).status,
        401,
      );
      assert.equal(
        (await call("/v1/auth/session", {}, {
          name: "alice",
          password: "wrong",
          token: "123456",
        })).status,
        401,
      );
      assert.equal(
        (await call("/v1/auth/seed", {}, { name: "alice", password: "no" }))
          .status,
        401,
      );
      // bob's wrong tokens until his name is in back-off.
      await waitFor(
        "bob locked out",
        async () => {
          return (await call("/v1/vms", await otp("bob", true))).status === 429;
        },
        20_000,
        0,
      );

      const text = await scrape(app);
      assert.equal(sample(text, failures("none", "no_credentials")), 1);
      assert.equal(sample(text, failures("totp", "invalid"))! >= 2, true);
      assert.equal(sample(text, failures("totp", "replayed")), 1);
      assert.equal(sample(text, failures("bearer", "malformed")), 1);
      assert.equal(sample(text, failures("login", "password")), 1);
      assert.equal(sample(text, failures("seed", "password")), 1);
      assert.equal(sample(text, failures("totp", "locked_out")), 1);

      // Seeds were written (txn) and read (range): both were timed.
      for (const operation of ["range", "txn"]) {
        const n = sample(
          text,
          `ucloud_etcd_request_duration_seconds_count{operation="${operation}"}`,
        );
        assert.ok(n !== undefined && n > 0, `${operation}: ${n}`);
        const sum = sample(
          text,
          `ucloud_etcd_request_duration_seconds_sum{operation="${operation}"}`,
        )!;
        assert.ok(sum > 0 && sum / n < 1, `${operation}: ${sum} s in ${n}`);
      }
      await promtoolCheck(text);
    } finally {
      store.close();
      await slapd.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
