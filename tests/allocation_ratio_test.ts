/**
 * Allocation ratios and the memory reserve end to end (real etcd, worker
 * processes with the sim driver): a worker reports its config's ratios and
 * reserve in its host document, placement counts cores × cpuRatio and
 * (memory − reserve) × memoryRatio, and `GET /v1/hosts` shows them.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Alive, Host, Vm } from "../core/schemas.ts";
import { call } from "./helpers/api.ts";
import { type Cluster, waitFor, withCluster } from "./helpers/cluster.ts";
import { noSanitize, post } from "./helpers/placement.ts";

/** The test cluster sets ratio 1 and no reserve; empty: the config's defaults. */
const DEFAULTS = {
  UCLOUD_DRIVER: "sim",
  UCLOUD_CPU_ALLOCATION_RATIO: "",
  UCLOUD_RESERVED_MEMORY: "",
};

/**
 * Waits until `want[host]` VMs are placed on each host (`-`: pending, once
 * a placement try has said why); the VM names by host.
 */
async function waitCounts(
  c: Cluster,
  want: Record<string, number>,
): Promise<Map<string, string[]>> {
  return await waitFor(
    `VMs placed as ${JSON.stringify(want)}`,
    async () => {
      const vms = (await c.store.list(keys.vms, Vm)).items.map((v) => v.value);
      const on = new Map<string, string[]>();
      for (const v of vms) {
        const h = v.status.host ?? "-";
        on.set(h, [...on.get(h) ?? [], v.spec.name]);
      }
      const ok = Object.entries(want).every(([h, n]) =>
        (on.get(h)?.length ?? 0) === n
      );
      const said = vms.every((v) => v.status.host || v.status.reason);
      return ok && said ? on : null;
    },
    60_000,
    100,
  );
}

Deno.test({
  name:
    "a 2-core host takes eight 1-CPU VMs with the default cpuAllocationRatio 4, and a host whose memory less the reserve is full refuses",
  ...noSanitize,
  fn: () =>
    withCluster(async (c) => {
      const app = createApp({ store: c.store });
      await c.addWorker({
        name: "h1",
        cpus: 2,
        memoryMiB: 4096,
        env: DEFAULTS,
      });
      await waitFor("h1 alive", () => c.store.get(keys.alive("h1"), Alive));
      const h1 = (await c.store.get(keys.host("h1"), Host))!.value;
      assert.deepEqual(h1.allocation, {
        cpuRatio: 4,
        memoryRatio: 1,
        reservedMemoryMiB: 512,
      });
      for (let i = 0; i < 9; i++) {
        const r = await post(app, { name: `a${i}`, cpus: 1, memory: 128 });
        assert.equal(r.status, 201, JSON.stringify(r.body));
      }
      await waitCounts(c, { h1: 8, "-": 1 });
      const [pending] = (await c.store.list(keys.vms, Vm)).items
        .map((v) => v.value).filter((v) => !v.status.host);
      assert.match(
        pending.status.reason ?? "",
        /^no live host has 1 free CPU\(s\).*largest free: 0 CPU\(s\), 2560 MiB/,
      );

      // h2: 2 cores (8 with ratio 4), 1024 MiB less 512 reserved: four
      // VMs of 128 MiB, the waiting one first.
      await c.addWorker({
        name: "h2",
        cpus: 2,
        memoryMiB: 1024,
        env: { ...DEFAULTS, UCLOUD_RESERVED_MEMORY: "512" },
      });
      await waitCounts(c, { h1: 8, h2: 1, "-": 0 });
      for (let i = 0; i < 4; i++) {
        const r = await post(app, { name: `b${i}`, cpus: 1, memory: 128 });
        assert.equal(r.status, 201, JSON.stringify(r.body));
      }
      const on = await waitCounts(c, { h1: 8, h2: 4, "-": 1 });
      const last = (await c.store.list(keys.vms, Vm)).items
        .map((v) => v.value).find((v) => v.spec.name === on.get("-")![0])!;
      // h2 has cores to spare but no memory; h1 neither cores.
      assert.match(
        last.status.reason ?? "",
        /^no live host has 1 free CPU\(s\) and 128 MiB free memory \(2 host\(s\) checked/,
      );

      const hosts = await call(app, "GET", "/v1/hosts");
      assert.equal(hosts.status, 200);
      const view = Object.fromEntries(
        // deno-lint-ignore no-explicit-any
        hosts.body.items.map((h: any) => [h.name, h]),
      );
      assert.deepEqual(view.h1.effective, {
        cpus: 8,
        memoryMiB: 3584,
        diskMiB: 102_400,
      });
      assert.deepEqual(
        [view.h1.usage.cpus, view.h1.usage.memoryMiB],
        [8, 1024],
      );
      assert.deepEqual(view.h2.allocation, {
        cpuRatio: 4,
        memoryRatio: 1,
        reservedMemoryMiB: 512,
      });
      assert.deepEqual(view.h2.effective, {
        cpus: 8,
        memoryMiB: 512,
        diskMiB: 102_400,
      });
      assert.deepEqual(
        [view.h2.usage.cpus, view.h2.usage.memoryMiB],
        [4, 512],
      );
    }, { guest: false }),
});
