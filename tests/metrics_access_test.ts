/**
 * Who may scrape `GET /metrics` (config `api.metrics`): by default only
 * loopback; `allow` names addresses and networks, seen through the proxies
 * of `api.trustedProxies`; `bearerTokenFile` lets a scraper in from
 * anywhere with its token (read at each scrape). Real etcd behind the app.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { parseConfig } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { Store } from "../core/store.ts";
import { captureLog } from "./helpers/otp.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "GET /metrics answers only allowed addresses or the bearer token",
  ...noSanitize,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "uc-metrics-access-" });
    const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
    const store = Store.connect({
      endpoints: [etcd.endpoint],
      prefix: "/metrics-access",
    });
    try {
      const scrape = async (
        app: ReturnType<typeof createApp>,
        from: string | undefined,
        headers: Record<string, string> = {},
      ) => {
        const res = await app.request(
          "/metrics",
          { headers },
          from === undefined ? undefined : { remoteAddr: { hostname: from } },
        );
        const text = await res.text();
        return { status: res.status, text };
      };
      const appOf = (file: Record<string, unknown>) =>
        createApp({
          store,
          config: parseConfig({ stateDir: dir, ...file }, () => undefined),
        });

      // The default: loopback only.
      const plain = appOf({});
      for (const lo of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
        const r = await scrape(plain, lo);
        assert.equal(r.status, 200, `${lo}: ${r.text}`);
        assert.match(r.text, /ucloud_http_requests_total/);
      }
      for (const out of ["192.0.2.7", "2001:db8::7", undefined]) {
        const r = await scrape(plain, out);
        assert.equal(r.status, 403, `${out}: ${r.text}`);
        assert.doesNotMatch(r.text, /ucloud_/);
        assert.equal(JSON.parse(r.text).error.code, "forbidden");
      }
      // A forged X-Forwarded-For from an untrusted peer changes nothing.
      const forged = await scrape(plain, "2001:db8::7", {
        "x-forwarded-for": "127.0.0.1",
      });
      assert.equal(forged.status, 403);

      // allow names a network; the proxy's forwarded client is checked.
      const tokenFile = `${dir}/metrics.token`;
      const token = "s3cr3t-metrics-token-0123456789";
      await Deno.writeTextFile(tokenFile, `${token}\n`);
      const log = captureLog();
      const open = createApp({
        store,
        log,
        config: parseConfig({
          stateDir: dir,
          api: {
            trustedProxies: ["10.0.0.2"],
            metrics: { allow: ["2001:db8:9::/64"], bearerTokenFile: tokenFile },
          },
        }, () => undefined),
      });
      assert.equal((await scrape(open, "2001:db8:9::5")).status, 200);
      assert.equal((await scrape(open, "127.0.0.1")).status, 403);
      assert.equal(
        (await scrape(open, "10.0.0.2", {
          "x-forwarded-for": "2001:db8:9::1",
        })).status,
        200,
      );
      assert.equal(
        (await scrape(open, "10.0.0.2", {
          "x-forwarded-for": "2001:db8:a::1",
        })).status,
        403,
      );
      // The bearer token works from anywhere; a wrong one is 401.
      const bearer = { authorization: `Bearer ${token}` };
      assert.equal((await scrape(open, "192.0.2.7", bearer)).status, 200);
      const wrong = await scrape(open, "2001:db8:9::5", {
        authorization: `Bearer ${token}x`,
      });
      assert.equal(wrong.status, 401, wrong.text);
      // A new token in the file counts from the next scrape.
      await Deno.writeTextFile(tokenFile, "another-token-of-enough-length");
      assert.equal((await scrape(open, "192.0.2.7", bearer)).status, 401);
      assert.equal(
        (await scrape(open, "192.0.2.7", {
          authorization: "Bearer another-token-of-enough-length",
        })).status,
        200,
      );
      assert.ok(!log.lines.some((l) => l.includes(token)), "token logged");
    } finally {
      store.close();
      await etcd.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("config: api.metrics defaults to loopback; UCLOUD_METRICS_ALLOW sets it", () => {
  const none = () => undefined;
  assert.deepEqual(parseConfig({}, none).api.metrics.allow, [
    "127.0.0.1",
    "::1",
  ]);
  const env = (n: string) =>
    n === "UCLOUD_METRICS_ALLOW" ? "10.1.0.0/16, 2001:db8::9" : undefined;
  const c = parseConfig({ api: { metrics: { bearerTokenFile: "/t" } } }, env);
  assert.deepEqual(c.api.metrics, {
    allow: ["10.1.0.0/16", "2001:db8::9"],
    bearerTokenFile: "/t",
  });
  assert.throws(
    () => parseConfig({ api: { metrics: { allow: ["nope"] } } }, none),
    /api\.metrics\.allow\.0/,
  );
});
