/**
 * etcd stays bounded over time (issue 13), on real etcd: the embedded etcd
 * compacts its own history and has an explicit quota
 * (core/etcd_server.ts); the maintenance round defragments a member with
 * much free space and leaves one without alone (tasks/maintenance_round.ts);
 * admins see each member's size and revision (`GET /v1/maintenance/etcd`,
 * `ucloud host list`).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { z } from "zod";
import { createApp } from "../api/app.ts";
import { main } from "../cli/main.ts";
import { ConfigSchema } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { memberStatuses } from "../core/etcd_members.ts";
import { Store } from "../core/store.ts";
import { maintenanceOnce } from "../tasks/maintenance_round.ts";
import { call, headerAuth } from "./helpers/api.ts";
import { waitFor } from "./helpers/cluster.ts";

async function withServer(
  opts: Omit<Parameters<typeof startEtcd>[0], "dataDir">,
  f: (store: Store) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "uc-etcdm-" });
  const etcd = await startEtcd({ ...opts, dataDir: dir });
  const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/m" });
  try {
    await f(store);
  } finally {
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Puts `n` values of `size` bytes under `<name>-<i>`. */
async function fill(store: Store, name: string, n: number, size: number) {
  for (let i = 0; i < n; i++) {
    const value = Buffer.alloc(size, `${name}-${i}`);
    await store.client.kv.put({ key: store.full(`${name}-${i}`), value });
  }
}

Deno.test("startEtcd() compacts its history on its own: an old revision is no longer readable", async () => {
  await withServer(
    { compaction: { mode: "periodic", retention: "1s" } },
    async (store) => {
      const first = await store.client.kv.put({
        key: store.full("k"),
        value: Buffer.from("0"),
      });
      const old = String(first.header.revision);
      for (let i = 1; i <= 5; i++) {
        await store.client.kv.put({
          key: store.full("k"),
          value: Buffer.from(String(i)),
        });
      }
      await waitFor(
        "the old revision to be compacted",
        async () => {
          try {
            await store.list("k", z.unknown(), { revision: old });
            return false;
          } catch (err) {
            return /compacted/.test(String(err));
          }
        },
        15_000,
        200,
      );
    },
  );
});

Deno.test("startEtcd() runs with an explicit quota: past it writes fail and the member raises NOSPACE", async () => {
  await withServer({ quotaBytes: 1 * MiB }, async (store) => {
    // etcd counts the database file, which grows when a batch commits
    // (every 100 ms): write until a put fails, 32 MiB at the most.
    let err: unknown = null;
    for (let i = 0; i < 256 && !err; i++) {
      err = await fill(store, `big${i}`, 1, 128 * KiB).then(
        () => null,
        (e) => e,
      );
    }
    assert.match(String(err), /database space exceeded/);
    const m = await waitFor("the NOSPACE alarm", async () => {
      const [s] = await memberStatuses(store);
      return s.alarms.length > 0 && s;
    }, 10_000);
    assert.deepEqual(m.alarms, ["NOSPACE"]);
  });
});

Deno.test("maintenanceOnce() defragments an etcd member with much free space and leaves one with little alone", async () => {
  await withServer({}, async (store) => {
    const config = {
      maintenance: {
        ...ConfigSchema.shape.maintenance.parse(undefined),
        defragMinFreeBytes: 2 * MiB,
        defragFreeRatio: 0.5,
      },
    };
    await fill(store, "v", 16, 256 * KiB);
    const idle = await maintenanceOnce(store, config, { by: "h1" });
    assert.equal(idle.ran, true);
    assert.equal(idle.etcd.length, 1);
    assert.equal(idle.etcd[0].defragmented, false, "little free space");

    const del = await store.client.kv.deleteRange({
      key: store.full("v-"),
      range_end: store.full("v."),
    });
    await store.client.kv.compact({
      revision: String(del.header.revision),
      physical: true,
    });
    // Pages the compaction freed count as free after a later commit.
    const before = await waitFor(
      "the compacted space to be free",
      async () => {
        await fill(store, "tick", 1, 1);
        const [m] = await memberStatuses(store);
        return m.dbSize - m.dbSizeInUse > 2 * MiB && m;
      },
      10_000,
      100,
    );
    // The only member: defragmented near its quota only.
    const near = {
      ...config.maintenance.embeddedEtcd,
      quotaBytes: before.dbSize,
    };
    const r = await maintenanceOnce(store, {
      maintenance: { ...config.maintenance, embeddedEtcd: near },
    }, { by: "h1" });
    assert.equal(r.etcd[0].defragmented, true);
    const [after] = await memberStatuses(store);
    assert.ok(
      after.dbSize < before.dbSize / 2,
      `file shrank: ${before.dbSize} -> ${after.dbSize}`,
    );
    assert.equal(r.etcd[0].dbSizeAfter, after.dbSize);
  });
});

Deno.test("GET /v1/maintenance/etcd and ucloud host list show each etcd member's database size and revision", async () => {
  await withServer({}, async (store) => {
    const app = createApp({ store, auth: headerAuth });
    await fill(store, "v", 4, 256 * KiB);
    const put = await store.client.kv.put({
      key: store.full("last"),
      value: Buffer.from("x"),
    });
    // The size counts once the backend commits (every 100 ms).
    const seen = await waitFor(
      "the size to count the values",
      async () => {
        const [m] = await memberStatuses(store);
        return m.dbSize >= 1 * MiB && m;
      },
      10_000,
      100,
    );
    const r = await call(app, "GET", "/v1/maintenance/etcd", {
      headers: { "x-user": "root/admin" },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [m] = r.body.members;
    assert.equal(r.body.members.length, 1);
    assert.equal(m.name, "ucloud");
    assert.equal(m.revision, String(put.header.revision));
    assert.equal(m.dbSize, seen.dbSize);
    assert.ok(m.dbSizeInUse > 0 && m.dbSizeInUse <= m.dbSize);
    assert.equal(m.leader, true);
    assert.deepEqual(m.alarms, []);
    const user = await call(app, "GET", "/v1/maintenance/etcd", {
      headers: { "x-user": "bob" },
    });
    assert.equal(user.status, 403);

    let out = "";
    const code = await main(["host", "list"], {
      fetch: (input, init) => {
        const req = new Request(input, init);
        req.headers.set("x-user", "root/admin");
        return Promise.resolve(app.fetch(req));
      },
      env: {
        UCLOUD_API: "http://ucloud.test",
        XDG_CONFIG_HOME: "/nonexistent",
      },
      stdout: { write: (s) => out += s },
      stderr: { write: () => {} },
      readStdin: () => Promise.resolve(""),
    });
    assert.equal(code, 0, out);
    const mib = (n: number) => (n / MiB).toFixed(1);
    assert.match(
      out,
      new RegExp(
        `^etcd ucloud: revision ${put.header.revision}, db ${
          mib(m.dbSize)
        } MiB \\(\\d+\\.\\d MiB in use\\), leader$`,
        "m",
      ),
    );
  });
});

Deno.test("startEtcd() runs etcd with lease checkpoints (long leases keep their remaining TTL over a restart)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uc-etcdm-" });
  const etcd = await startEtcd({ dataDir: dir });
  try {
    const cmdline = (await Deno.readTextFile(`/proc/${etcd.pid}/cmdline`))
      .split("\0");
    assert.ok(cmdline.includes("--experimental-enable-lease-checkpoint"));
    // It answers with checkpoints on: a lease can be granted.
    const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/m" });
    try {
      const lease = store.client.lease(60, { autoKeepAlive: false });
      assert.ok((await lease.grant()).length > 0);
      await lease.revoke();
    } finally {
      store.close();
    }
  } finally {
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
