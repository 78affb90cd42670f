/**
 * etcd stays bounded over time (issue 13), on real etcd: the embedded etcd
 * compacts its own history and has an explicit quota
 * (core/etcd_server.ts); the maintenance round defragments a member with
 * much free space and leaves one without alone (tasks/maintenance_round.ts).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { z } from "zod";
import { ConfigSchema } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { memberStatuses } from "../core/etcd_members.ts";
import { Store } from "../core/store.ts";
import { maintenanceOnce } from "../tasks/maintenance_round.ts";
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
    const err = await fill(store, "big", 32, 128 * KiB).then(
      () => null,
      (e) => e as Error,
    );
    assert.match(String(err), /database space exceeded/);
    const [m] = await memberStatuses(store);
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
    const r = await maintenanceOnce(store, config, { by: "h1" });
    assert.equal(r.etcd[0].defragmented, true);
    const [after] = await memberStatuses(store);
    assert.ok(
      after.dbSize < before.dbSize / 2,
      `file shrank: ${before.dbSize} -> ${after.dbSize}`,
    );
    assert.equal(r.etcd[0].dbSizeAfter, after.dbSize);
  });
});
