/**
 * `/metrics` of the API over a running cloud: real etcd, two real worker
 * processes with the sim driver. What the workers do reaches the API's
 * metrics through its watches (api/task_flow.ts, api/vm_placements.ts):
 * a VM created and running moves the placement histogram and the outcome
 * counters of vm.create and vm.start; a host killed with SIGKILL moves the
 * failover counters and the histogram of its VMs' time from the host's
 * death to running elsewhere.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { TaskCounts } from "../api/task_counts.ts";
import { VmPlacements } from "../api/vm_placements.ts";
import { timeEtcdRequests } from "../core/etcd_metrics.ts";
import { keys } from "../core/keys.ts";
import { Alive, Vm } from "../core/schemas.ts";
import { PlacementCache } from "../scheduler/cache.ts";
import { type App, noSanitize } from "./helpers/api.ts";
import { promtoolCheck, sample, scrape } from "./helpers/api_metrics.ts";
import { type Cluster, waitFor, withCluster } from "./helpers/cluster.ts";

async function create(app: App, name: string): Promise<string> {
  const res = await app.request("/v1/vms", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, cpus: 1, memory: 128 }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()).vm.id;
}

/** Waits until VM `id` runs (on another host than `not`); its host. */
async function running(c: Cluster, id: string, not?: string) {
  const vm = await waitFor(`${id} running`, async () => {
    const v = (await c.store.get(keys.vm(id), Vm))?.value;
    return v?.status.phase === "running" && v.status.host !== not ? v : null;
  }, 60_000);
  return vm.status.host!;
}

/** Waits until a scrape has every series at least at its value. */
function atLeast(app: App, want: Record<string, number>) {
  return waitFor(JSON.stringify(want), async () => {
    const text = await scrape(app);
    return Object.entries(want).every(([s, n]) =>
      (sample(text, s) ?? -1) >= n
    ) && text;
  }, 60_000);
}

const outcome = (kind: string) =>
  `ucloud_task_outcomes_total{kind="${kind}",outcome="succeeded"}`;

Deno.test({
  name:
    "/metrics over a sim cloud: placements and task outcomes of a VM's create, and a killed host's failover time",
  ...noSanitize,
  fn: () =>
    withCluster(async (c) => {
      c.env.UCLOUD_DRIVER = "sim";
      const store = c.store;
      const counts = TaskCounts.start(store);
      const placements = VmPlacements.start(store);
      let cache: PlacementCache | undefined;
      try {
        for (const h of ["h1", "h2"]) {
          await c.addWorker({ name: h, cpus: 4, memoryMiB: 1024 });
        }
        await waitFor(
          "2 hosts alive",
          async () => (await store.count(keys.alives)) === 2,
          30_000,
        );
        const app = createApp({
          store,
          taskCounts: counts,
          metrics: [...placements.metrics, ...timeEtcdRequests(store)],
        });

        // No placement cache in this process: a vm.create task places it.
        const first = await create(app, "first");
        const victim = await running(c, first);
        await atLeast(app, {
          'ucloud_placements_total{placer="worker"}': 1,
          'ucloud_placement_duration_seconds_count{placer="worker"}': 1,
          [outcome("vm.create")]: 1,
          [outcome("vm.start")]: 1,
          'ucloud_task_duration_seconds_count{kind="vm.start",outcome="succeeded"}':
            1,
        });

        // With one, the create request places it in its own transaction.
        cache = PlacementCache.start(store);
        assert.ok(await cache.waitReady(10_000));
        const second = await create(app, "second");
        await running(c, second);
        const placed = await atLeast(app, {
          'ucloud_placements_total{placer="api"}': 1,
          [outcome("vm.start")]: 2,
        });
        assert.equal(
          sample(placed, 'ucloud_placement_duration_seconds_sum{placer="api"}'),
          0,
        );
        const waited = sample(
          placed,
          'ucloud_placement_duration_seconds_sum{placer="worker"}',
        )!;
        assert.ok(waited > 0 && waited < 30, `placed in ${waited} s`);

        // The host of the first VM dies; its VMs run on the other one.
        const hosts = await Promise.all(
          [first, second].map(async (id) =>
            (await store.get(keys.vm(id), Vm))?.value.status.host
          ),
        );
        const onVictim = hosts.filter((h) => h === victim);
        const w = c.workers.get(victim)!;
        const killedAt = Date.now();
        await w.kill("SIGKILL");
        await w.killFencer();
        await waitFor(
          `${victim}'s lease to expire`,
          async () => !(await store.get(keys.alive(victim), Alive)),
          30_000,
        );
        await running(c, first, victim);
        const back = Date.now();
        const text = await atLeast(app, {
          "ucloud_failovers_total": 1,
          'ucloud_failover_vms_total{action="evacuated"}': 1,
          "ucloud_failover_recovery_seconds_count": 1,
          [outcome("host.failed")]: 1,
        });
        const moved = sample(
          text,
          'ucloud_failover_vms_total{action="evacuated"}',
        )!;
        assert.ok(moved >= 1 && moved <= onVictim.length, `${moved} moved`);
        const n = sample(text, "ucloud_failover_recovery_seconds_count")!;
        const sum = sample(text, "ucloud_failover_recovery_seconds_sum")!;
        // From the alive key's deletion (after the kill, about a TTL) to
        // running: more than nothing, less than the kill to running.
        assert.ok(
          sum / n > 0 && sum / n <= (back - killedAt) / 1000,
          `${sum / n} s per VM, ${back - killedAt} ms from the kill`,
        );
        console.log(
          `failover: ${moved} VM(s), ${(sum / n).toFixed(2)} s each from ` +
            `the host's death to running, ${back - killedAt} ms from the kill`,
        );
        assert.ok(
          (sample(text, 'ucloud_placements_total{placer="worker"}') ?? 0) >= 2,
        );
        await promtoolCheck(text);
      } finally {
        await cache?.close();
        await placements.close();
        await counts.close();
      }
    }, { guest: false, leaseTtlSeconds: 2 }),
});
