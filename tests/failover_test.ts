/**
 * Dead hosts on real components: three hosts as network namespaces joined by
 * veth to a bridge where etcd listens, a worker process in each, qemu VMs
 * under TCG. A sampler watches which namespace runs which VM throughout.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Alive, Task, Vm } from "../core/schemas.ts";
import { type Cluster, startCluster, waitFor } from "./helpers/cluster.ts";
import { createHostNet, type HostNet } from "./helpers/netns.ts";
import { serveEtcdOn, startWorkerIn } from "./helpers/ns_worker.ts";
import { qemuByHost, startSampler } from "./helpers/qemu_by_host.ts";

type App = ReturnType<typeof createApp>;
const HOSTS = ["h1", "h2", "h3"];

async function create(app: App, name: string): Promise<string> {
  const res = await app.request("/v1/vms", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, cpus: 1, memory: 128 }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()).vm.id;
}

async function vms(c: Cluster): Promise<Vm[]> {
  return (await c.store.list(keys.vms, Vm)).items.map((v) => v.value);
}

/** VM id -> hosts whose namespace runs a qemu for it. */
async function placement(net: HostNet): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const [host, procs] of await qemuByHost(net)) {
    for (const p of procs) {
      if (!p.vmId) continue;
      const hs = out.get(p.vmId) ?? [];
      if (!hs.includes(host)) hs.push(host);
      out.set(p.vmId, hs);
    }
  }
  return out;
}

async function withHosts(
  f: (c: Cluster, net: HostNet, app: App) => Promise<void>,
) {
  const c = await startCluster({ leaseTtlSeconds: 2 });
  const net = await createHostNet(HOSTS);
  try {
    await serveEtcdOn(c, net);
    for (const h of HOSTS) {
      await startWorkerIn(c, net, { name: h, cpus: 4, memoryMiB: 1024 });
    }
    await waitFor(
      "3 hosts alive",
      async () => (await c.store.count(keys.alives)) === 3,
      20_000,
    );
    await f(c, net, createApp({ store: c.store }));
  } catch (err) {
    await c.printLogs();
    throw err;
  } finally {
    await c.stop();
    await net.destroy();
  }
}

/** Creates n VMs and waits until each runs in exactly one namespace. */
async function startVms(c: Cluster, net: HostNet, app: App, n: number) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await create(app, `v${i}`));
  await waitFor(
    "all VMs running",
    async () => {
      const p = await placement(net);
      const docs = await vms(c);
      return ids.every((id) =>
        p.get(id)?.length === 1 &&
        docs.find((v) => v.id === id)?.status.phase === "running"
      );
    },
    60_000,
    100,
  );
  return ids;
}

Deno.test("a host killed with SIGKILL: its VMs run on the other hosts, each exactly once", async () => {
  await withHosts(async (c, net, app) => {
    const ids = await startVms(c, net, app, 6);
    const before = await placement(net);
    const victim = HOSTS.find((h) =>
      ids.some((id) => before.get(id)![0] === h)
    )!;
    const moved = ids.filter((id) => before.get(id)![0] === victim);
    assert.ok(moved.length > 0);
    const sampler = startSampler(net, 50);
    const killedAt = Date.now();
    await net.killHost(victim);
    const back = await waitFor(
      "victim's VMs running elsewhere",
      async () => {
        const p = await placement(net);
        const docs = await vms(c);
        return moved.every((id) => {
          const hs = p.get(id) ?? [];
          const doc = docs.find((v) => v.id === id);
          return hs.length === 1 && hs[0] !== victim &&
            doc?.status.phase === "running" && doc.status.host === hs[0];
        }) && Date.now();
      },
      30_000,
      50,
    );
    const { violations } = await sampler.stop();
    assert.deepEqual(violations, [], "no VM ever ran on two hosts");
    console.log(`failover of ${moved.length} VM(s) took ${back - killedAt} ms`);
    // VMs of the other hosts were not touched.
    const after = await placement(net);
    for (const id of ids.filter((i) => !moved.includes(i))) {
      assert.deepEqual(after.get(id), before.get(id));
    }
    // The evacuation is recorded as a task with its outcome.
    const failed = (await c.store.list(keys.tasks, Task)).items
      .map((t) => t.value).filter((t) => t.kind === "host.failed");
    assert.equal(failed.length, 1);
    assert.equal(failed[0].state, "succeeded");
    assert.equal(failed[0].payload.host, victim);
    assert.deepEqual(
      [...(failed[0].result as { evacuated: string[] }).evacuated].sort(),
      [...moved].sort(),
    );
  });
});

Deno.test("a partitioned host fences its VMs; they never run twice; it rejoins empty and is used again", async () => {
  await withHosts(async (c, net, app) => {
    const ids = await startVms(c, net, app, 6);
    const before = await placement(net);
    const cut = HOSTS.find((h) => ids.some((id) => before.get(id)![0] === h))!;
    const moved = ids.filter((id) => before.get(id)![0] === cut);
    const oldLease = (await c.store.get(keys.alive(cut), Alive))!.value.lease;
    const sampler = startSampler(net, 50);
    await net.partition(cut);
    // The cut host's worker keeps running, but its VMs are fenced.
    await waitFor(
      "cut host fenced",
      async () => (await qemuByHost(net)).get(cut)!.length === 0,
      15_000,
      50,
    );
    assert.ok((await net.pids(cut)).length > 0, "worker still runs");
    await waitFor(
      "moved VMs running elsewhere",
      async () => {
        const p = await placement(net);
        return moved.every((id) =>
          p.get(id)?.length === 1 && p.get(id)![0] !== cut
        );
      },
      30_000,
      50,
    );
    await net.heal(cut);
    const rejoined = await waitFor(
      "cut host rejoined",
      async () => {
        const a = await c.store.get(keys.alive(cut), Alive);
        return a && a.value.lease !== oldLease ? a : null;
      },
      30_000,
      100,
    );
    assert.notEqual(rejoined.value.incarnation, oldLease);
    // It rejoined empty: no qemu, no VM assigned.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await qemuByHost(net)).get(cut)!.length, 0);
    assert.ok((await vms(c)).every((v) => v.status.host !== cut));
    const { violations, samples } = await sampler.stop();
    assert.deepEqual(violations, [], "no VM ever ran on two hosts");
    assert.ok(samples.length > 20);
    // Used again: a new VM lands on the least loaded host, the empty one.
    const fresh = await create(app, "fresh");
    const v = await waitFor("fresh VM running", async () => {
      const doc = (await vms(c)).find((x) => x.id === fresh);
      return doc?.status.phase === "running" ? doc : null;
    }, 30_000);
    assert.equal(v.status.host, cut);
  });
});
