/**
 * The worker keeps its host's VMs from a watch (workers/host_vms.ts): an
 * idle worker's etcd reads do not grow with the VMs of other hosts, and a
 * VM that leaves the host is still found by the keeper, through the watch.
 * Counted with etcd's own metrics (`etcd_mvcc_range_total`,
 * `etcd_network_client_grpc_sent_bytes_total`).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { keys } from "../core/keys.ts";
import { Alive } from "../core/schemas.ts";
import { sleep } from "../core/watch.ts";
import {
  type Cluster,
  waitFor,
  withCluster,
  type WorkerProc,
} from "./helpers/cluster.ts";
import { vmDoc } from "./helpers/task_ctx.ts";

const noSanitize = { sanitizeOps: false, sanitizeResources: false };

/** etcd's counters of range requests and bytes sent to clients. */
async function etcdCounters(c: Cluster) {
  const text = await (await fetch(`${c.etcd.endpoint}/metrics`)).text();
  const value = (name: string) =>
    Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? NaN);
  return {
    ranges: value("etcd_mvcc_range_total"),
    bytes: value("etcd_network_client_grpc_sent_bytes_total"),
  };
}

/** Ranges and bytes etcd served over `ms` while nothing else asks. */
async function idleCost(c: Cluster, ms: number) {
  const a = await etcdCounters(c);
  await sleep(ms);
  const b = await etcdCounters(c);
  return { ranges: b.ranges - a.ranges, bytes: b.bytes - a.bytes };
}

/** A worker of h1 whose cron rounds do not run during the test. */
async function startWorker(c: Cluster): Promise<WorkerProc> {
  const config = `${c.dir}/watch.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      maintenance: { schedule: "0 0 1 1 *" },
      scheduler: { rebalanceSchedule: "0 0 1 1 *" },
    }),
  );
  const w = await c.addWorker({ name: "h1", env: { UCLOUD_CONFIG: config } });
  await waitFor("h1 registered", () => c.store.get(keys.alive("h1"), Alive));
  return w;
}

/** Puts `n` VM documents of host `host`, 100 per transaction. */
async function putVms(c: Cluster, n: number, host: string, from = 0) {
  for (let i = 0; i < n; i += 100) {
    const txn = c.store.txn();
    for (let j = i; j < Math.min(n, i + 100); j++) {
      const id = `vm-o${from + j}`;
      txn.put(keys.vm(id), vmDoc(id, { phase: "running", host }));
    }
    await txn.commit();
  }
}

Deno.test({
  name:
    "an idle worker's etcd reads do not grow with the number of other hosts' VMs",
  ...noSanitize,
  async fn() {
    await withCluster(async (c) => {
      await startWorker(c);
      // Past the first network sync and the watches' listings.
      await sleep(3000);
      const none = await idleCost(c, 6000);
      await putVms(c, 2000, "h-other");
      await sleep(2000);
      const many = await idleCost(c, 6000);
      console.log(
        `idle 6 s: 0 VMs ${none.ranges} ranges ${none.bytes} B; ` +
          `2000 VMs ${many.ranges} ranges ${many.bytes} B`,
      );
      // Listing vm/ every monitor pass: about 6 ranges and 4 MB here.
      assert.ok(many.ranges <= none.ranges + 2, JSON.stringify({ none, many }));
      assert.ok(
        many.bytes < none.bytes + 20_000,
        JSON.stringify({ none, many }),
      );
    }, { guest: false });
  },
});

Deno.test({
  name:
    "the keeper removes a VM that moved to another host, seen through the watch, and spares one whose document it cannot read",
  ...noSanitize,
  async fn() {
    await withCluster(async (c) => {
      const w = await startWorker(c);
      const alive = (await c.store.get(keys.alive("h1"), Alive))!;
      const lease = alive.value.lease;
      const dir = (id: string) => `${w.stateDir}/vms/${id}`;
      for (const id of ["vm-left", "vm-bad"]) {
        await Deno.mkdir(dir(id), { recursive: true });
      }
      const mine = vmDoc("vm-left", {
        phase: "stopped",
        host: "h1",
        incarnation: lease,
      });
      await c.store.txn().put(keys.vm("vm-left"), mine).commit();
      await c.store.client.kv.put({
        key: c.store.full(keys.vm("vm-bad")),
        value: Buffer.from(JSON.stringify({ id: "vm-bad" })),
      });
      const exists = (id: string) =>
        Deno.stat(dir(id)).then(() => true, () => false);
      // Owned by this incarnation: kept over several passes.
      await sleep(3000);
      assert.ok(await exists("vm-left"));
      // Evacuated while this host was cut off: its files go.
      await c.store.txn().put(keys.vm("vm-left"), {
        ...mine,
        status: { ...mine.status, host: "h2", incarnation: "1" },
      }).commit();
      await waitFor("vm-left removed", async () => !(await exists("vm-left")));
      assert.ok(await exists("vm-bad"), "a VM it cannot read was removed");
      await waitFor(
        "the removal logged",
        async () => /removed a VM this host does not own/.test(await w.log()),
      );
    }, { guest: false });
  },
});
