/**
 * `GET /v1/events` with the real identity (signed bearer and session
 * tokens, revocations in etcd): a stream ends with `event: end` once its
 * token is revoked or has expired, and only admins may ask for `?all=1`.
 * No directory lookup happens for signed tokens: the LDAP URL is unused.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { EventHub } from "../api/event_hub.ts";
import { createIdentity } from "../api/identity.ts";
import { parseConfig } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { importHostKey, newHostKey } from "../core/secrets.ts";
import { Store } from "../core/store.ts";
import { call, noSanitize } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";
import { EventLog } from "./helpers/sse.ts";

Deno.test({
  name:
    "a /v1/events stream ends with event: end when its bearer token is revoked, its session revoked or its token expired",
  ...noSanitize,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "uc-eva-" });
    const etcd = await startEtcd({ dataDir: `${dir}/etcd` });
    const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/a" });
    const hub = new EventHub(store);
    let skew = 0;
    try {
      const config = parseConfig({
        stateDir: dir,
        etcd: { endpoints: [etcd.endpoint], prefix: "/a" },
        identity: { ldap: { url: "ldap://127.0.0.1:1" } },
      }, () => undefined);
      const identity = await createIdentity({
        store,
        config,
        keys: await importHostKey(newHostKey()),
        now: () => Date.now() + skew,
      });
      const app = createApp({
        store,
        config,
        identity,
        events: { hub, heartbeatMs: 200 },
      });
      const open = async (headers: Record<string, string>, query = "") => {
        const res = await app.request(`/v1/events${query}`, { headers });
        return res;
      };
      const bearer = async (name: string, admin = false) =>
        (await identity.bearer.issue({ name, admin })).token;

      const bob = await bearer("bob");
      const refused = await open({ authorization: `Bearer ${bob}` }, "?all=1");
      assert.equal(refused.status, 403, await refused.text());

      const log = new EventLog(await open({ authorization: `Bearer ${bob}` }));
      await log.waitEvent("synced");
      const other = new EventLog(
        await open({ authorization: `Bearer ${await bearer("carol")}` }),
      );
      await other.waitEvent("synced");
      const r = await call(app, "POST", "/v1/auth/revoke", {
        headers: { authorization: `Bearer ${bob}` },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await waitFor("bob's stream ended", () => log.done, 20_000);
      assert.deepEqual(log.events.at(-1), {
        event: "end",
        data: { reason: "revoked" },
      });
      assert.equal(other.done, false, "carol's stream goes on");
      assert.equal(hub.subscribers(keys.vms), 1);

      const session = (await identity.sessions.issue({
        name: "bob",
        admin: false,
      })).token;
      const web = new EventLog(
        await open({ cookie: `ucloud_session=${session}` }),
      );
      await web.waitEvent("synced");
      await identity.sessions.revoke(session);
      await waitFor("the web session's stream ended", () => web.done, 20_000);
      assert.deepEqual(web.events.at(-1)?.data, { reason: "revoked" });

      // carol's token (15 minutes) outlived: her stream ends as expired.
      skew = 16 * 60_000;
      await waitFor("carol's stream ended", () => other.done, 20_000);
      assert.deepEqual(other.events.at(-1)?.data, { reason: "expired" });
      await waitFor("no watch left", () => hub.watching === 0);
    } finally {
      await hub.close();
      store.close();
      await etcd.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
