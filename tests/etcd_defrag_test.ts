/**
 * The maintenance round's defragmentation and lock on real etcd
 * (tasks/maintenance_defrag.ts, tasks/maintenance_round.ts): followers
 * first and the leader last; nothing while a member does not answer; the
 * single embedded member only near its quota; the lock's lease kept alive
 * past its TTL, and a round that lost its lock defragments nothing.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Etcd3 } from "etcd3";
import { ConfigSchema } from "../core/config.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { memberStatuses } from "../core/etcd_members.ts";
import { keys } from "../core/keys.ts";
import { CronLock } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { maintenanceOnce } from "../tasks/maintenance_round.ts";
import { waitFor } from "./helpers/cluster.ts";
import { startTrio } from "./helpers/etcd_trio.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

const config = (quotaBytes = 2 * 1024 * MiB) => {
  const m = ConfigSchema.shape.maintenance.parse(undefined);
  return {
    maintenance: {
      ...m,
      defragMinFreeBytes: 2 * MiB,
      defragFreeRatio: 0.5,
      embeddedEtcd: { ...m.embeddedEtcd, quotaBytes },
    },
  };
};

/**
 * Writes 4 MiB, deletes and compacts it, and waits until every member
 * that answers has more than 2 MiB free; their statuses.
 */
async function makeFree(store: Store) {
  for (let i = 0; i < 16; i++) {
    await store.client.kv.put({
      key: store.full(`v-${i}`),
      value: Buffer.alloc(256 * KiB, `v-${i}`),
    });
  }
  const del = await store.client.kv.deleteRange({
    key: store.full("v-"),
    range_end: store.full("v."),
  });
  await store.client.kv.compact({
    revision: String(del.header.revision),
    physical: true,
  });
  // Pages the compaction freed count as free after a later commit.
  return await waitFor(
    "the compacted space to be free",
    async () => {
      await store.client.kv.put({
        key: store.full("tick"),
        value: Buffer.from("1"),
      });
      const all = (await memberStatuses(store)).filter((m) => !m.error);
      return all.every((m) => m.dbSize - m.dbSizeInUse > 2 * MiB) && all;
    },
    20_000,
    100,
  );
}

async function withSingle(f: (store: Store) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "uc-defrag-" });
  const etcd = await startEtcd({ dataDir: dir });
  const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/m" });
  try {
    await f(store);
  } finally {
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("maintenanceOnce() defragments the followers first and the leader last", async () => {
  const trio = await startTrio();
  const store = Store.connect({ endpoints: trio.endpoints, prefix: "/m" });
  try {
    // The leader must not be last in member order, or any order passes.
    const { members } = await store.client.cluster.memberList({});
    const statuses = await memberStatuses(store);
    if (statuses[statuses.length - 1].leader) {
      const leader = new Etcd3({
        hosts: statuses[statuses.length - 1].endpoints,
      });
      try {
        await leader.maintenance.moveLeader({ targetID: members[0].ID });
      } finally {
        leader.close();
      }
    }
    await makeFree(store);
    const before = await memberStatuses(store);
    const leader = before.find((m) => m.leader)!.name;
    assert.notEqual(before[before.length - 1].name, leader);
    const r = await maintenanceOnce(store, config(), { by: "h1" });
    assert.equal(r.reason, "done");
    assert.deepEqual(r.etcd.map((m) => m.defragmented), [true, true, true]);
    assert.equal(r.etcd[2].name, leader, JSON.stringify(r.etcd));
    assert.deepEqual(r.etcd.map((m) => m.leader), [false, false, true]);
    for (const m of r.etcd) {
      assert.ok(m.dbSizeAfter! < m.dbSize, `${m.name} shrank`);
    }
  } finally {
    store.close();
    await trio.stop();
  }
});

Deno.test("maintenanceOnce() defragments no etcd member while another does not answer", async () => {
  const trio = await startTrio();
  const store = Store.connect({ endpoints: trio.endpoints, prefix: "/m" });
  try {
    await makeFree(store);
    const statuses = await memberStatuses(store);
    const follower = statuses.find((m) => !m.leader)!.name;
    await trio.kill(follower);
    const live = Store.connect({
      endpoints: trio.members.filter((m) => m.name !== follower)
        .map((m) => m.endpoint),
      prefix: "/m",
    });
    const r = await maintenanceOnce(live, config(), { by: "h1" })
      .finally(() => live.close());
    assert.equal(r.ran, true);
    assert.deepEqual(r.etcd.map((m) => m.defragmented), [false, false, false]);
    const down = r.etcd.find((m) => m.name === follower)!;
    assert.ok(down.error, "the member that is down");
    for (const m of r.etcd.filter((m) => m.name !== follower)) {
      assert.match(m.skipped ?? "", /does not answer.*quorum/, m.name);
    }
  } finally {
    store.close();
    await trio.stop();
  }
});

Deno.test("maintenanceOnce() leaves a single etcd member with much free space alone while its file is far from the quota", async () => {
  await withSingle(async (store) => {
    const [m] = await makeFree(store);
    const far = await maintenanceOnce(store, config(), { by: "h1" });
    assert.equal(far.etcd[0].defragmented, false);
    // From 80% of the quota on, etcd would soon refuse writes.
    const near = await maintenanceOnce(
      store,
      config(Math.ceil(m.dbSize / 0.8)),
      { by: "h1" },
    );
    assert.equal(near.etcd[0].defragmented, true);
    assert.ok(near.etcd[0].dbSizeAfter! < m.dbSize / 2);
  });
});

Deno.test("maintenanceOnce() keeps its lock's lease alive while a round outlasts the lease's TTL", async () => {
  await withSingle(async (store) => {
    const lock = keys.cronLock("maintenance");
    const held: string[] = [];
    const r = await maintenanceOnce(store, config(), {
      by: "h1",
      lockTtlSeconds: 2,
      afterTasks: async () => {
        // Three TTLs: the lock is read every half second.
        for (let i = 0; i < 12; i++) {
          await new Promise((res) => setTimeout(res, 500));
          const kv = await store.get(lock, CronLock);
          held.push(kv ? "held" : "gone");
        }
      },
    });
    assert.deepEqual(held, Array(12).fill("held"));
    assert.equal(r.reason, "done");
    assert.equal(await store.get(lock, CronLock), null, "released at the end");
  });
});

Deno.test("maintenanceOnce() that lost its lock before the defragmentation defragments nothing", async () => {
  await withSingle(async (store) => {
    const [m] = await makeFree(store);
    const lock = keys.cronLock("maintenance");
    const r = await maintenanceOnce(
      store,
      config(Math.ceil(m.dbSize / 0.8)),
      {
        by: "h1",
        afterTasks: async () => {
          const kv = await store.get(lock, CronLock);
          await store.revokeLease(kv!.lease);
        },
      },
    );
    assert.equal(r.reason, "lost the lock");
    assert.deepEqual(r.etcd, []);
    const [after] = await memberStatuses(store);
    assert.ok(after.dbSize >= m.dbSize, "not defragmented");
  });
});
