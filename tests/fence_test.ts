/**
 * Fencing on real worker processes (sim driver): the deadline file's clock,
 * where it lives, and the fencer the worker keeps running.
 */
import assert from "node:assert/strict";
import { monotonicMs } from "../core/clock.ts";
import { keys } from "../core/keys.ts";
import { Alive } from "../core/schemas.ts";
import { readDeadline } from "../workers/fence.ts";
import { type Cluster, waitFor, withCluster } from "./helpers/cluster.ts";

function withSimCluster(f: (c: Cluster) => Promise<void>): Promise<void> {
  return withCluster(async (c) => {
    c.env.UCLOUD_DRIVER = "sim";
    await f(c);
  }, { guest: false, leaseTtlSeconds: 2 });
}

function alive(c: Cluster, host: string): Promise<unknown> {
  return waitFor(`${host} alive`, () => c.store.get(keys.alive(host), Alive));
}

Deno.test("a worker writes its fence deadline in CLOCK_BOOTTIME ms, not epoch ms", async () => {
  await withSimCluster(async (c) => {
    const w = await c.addWorker({ name: "h1" });
    await alive(c, "h1");
    const seen = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const d = await readDeadline(w.stateDir);
      const now = monotonicMs();
      assert.ok(d !== null && d > now && d <= now + 1500, `${d} vs ${now}`);
      seen.add(d);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(seen.size >= 2, "renewed every keep-alive");
  });
});
