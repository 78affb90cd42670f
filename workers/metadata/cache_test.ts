/**
 * MetadataCache against a real etcd: a VM document it cannot read is read
 * again with a growing pause, so one bad document does not make a warning
 * (and three etcd reads) every 250 ms for as long as it stays bad.
 */
import assert from "node:assert/strict";
import { keys } from "../../core/keys.ts";
import { withEtcd } from "../../tests/helpers/etcd_env.ts";
import { captureLog } from "../../tests/helpers/otp.ts";
import { MetadataCache } from "./cache.ts";

Deno.test("MetadataCache reads an unreadable VM document again with a growing pause, not every 250 ms", async () => {
  await withEtcd(async (store) => {
    await store.client.put(store.full(keys.vm("vm-bad")).toString()).value(
      "{not json",
    );
    const log = captureLog();
    const cache = new MetadataCache({ store, log });
    try {
      cache.track(["vm-bad"]);
      await new Promise((r) => setTimeout(r, 3_000));
      const warnings = log.lines.filter((l) =>
        l.includes("cannot read VM metadata")
      );
      // 250, 500, 1000 ms, ...: at most 4 reads in 3 s (12 at a fixed 250).
      assert.ok(warnings.length >= 1, "the bad document is reported");
      assert.ok(warnings.length <= 4, `${warnings.length} warnings in 3 s`);
    } finally {
      await cache.close();
    }
  });
});
