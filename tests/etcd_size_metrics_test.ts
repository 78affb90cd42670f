/**
 * The etcd database size on the API's `/metrics` (api/etcd_size.ts), on a
 * real etcd: what the `UcloudEtcdDbNearQuota` alert (monitoring/rules.yml)
 * divides, read by a timer so a scrape sends etcd nothing.
 */
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { EtcdSize } from "../api/etcd_size.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { Store } from "../core/store.ts";

const MiB = 1024 * 1024;

Deno.test("EtcdSize reports each member's database size and the quota, and its timer follows the growth", async () => {
  const dir = await Deno.makeTempDir({ prefix: "uc-etcdsz-" });
  const etcd = await startEtcd({ dataDir: dir, quotaBytes: 64 * MiB });
  const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/s" });
  const size = EtcdSize.start(store, { quotaBytes: 64 * MiB, everyMs: 200 });
  try {
    const registry = new Registry();
    for (const m of size.metrics) registry.registerMetric(m);
    await size.refresh();
    const value = async (name: string) => {
      const text = await registry.metrics();
      const line = text.split("\n").find((l) => l.startsWith(name));
      assert.ok(line, `${name} in\n${text}`);
      return Number(line.split(" ").at(-1));
    };
    const before = await value("ucloud_etcd_db_size_bytes{member=");
    assert.ok(before > 0, `db size ${before}`);
    assert.equal(await value("ucloud_etcd_db_quota_bytes"), 64 * MiB);
    assert.ok(await value("ucloud_etcd_db_size_in_use_bytes{member=") > 0);
    // 8 MiB written: the timer's next reading shows a larger file.
    const blob = "x".repeat(512 * 1024);
    for (let i = 0; i < 16; i++) await store.client.put(`/s/b${i}`).value(blob);
    const deadline = Date.now() + 10_000;
    while (await value("ucloud_etcd_db_size_bytes{member=") <= before) {
      assert.ok(Date.now() < deadline, "the size never grew");
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await size.close();
    store.close();
    await etcd.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
