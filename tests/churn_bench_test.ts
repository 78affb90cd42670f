/**
 * The churn benchmark's phase (scripts/bench/churn.ts) at a tiny scale, on
 * a real etcd and a real worker with the sim driver: after the cycles, the
 * retention and a last maintenance round, no VM, owner index, task, queue,
 * claim or IPAM key is left and etcd holds a short history. The full comparison
 * (2,000 against 10,000 cycles) is `deno task bench --only=churn`.
 */
import assert from "node:assert/strict";
import { churnRun } from "../scripts/bench/churn.ts";

Deno.test("churnRun() leaves no VM or task key and a short etcd history after 30 create/delete cycles", async () => {
  const r = await churnRun({
    cycles: 30,
    inFlight: 6,
    retentionSeconds: 2,
    roundEveryMs: 1000,
  });
  assert.equal(r.tasksDeleted >= 2 * r.cycles, true, JSON.stringify(r));
  const left = Object.keys(r.keysByPrefix).filter((p) =>
    ![
      "host/",
      "alive/",
      "alloc/",
      "consolerelay/",
      "cron-round/",
      "retention/",
      "usage/",
      "usage-backfilled",
      "vmowner-backfilled",
    ]
      .includes(p)
  );
  assert.deepEqual(left, [], JSON.stringify(r.keysByPrefix));
  // The retention cursor; no kept record of a deleted VM.
  assert.ok((r.keysByPrefix["retention/"] ?? 0) <= 1, JSON.stringify(r));
  // One usage document: the one user's, whatever the number of cycles.
  assert.ok((r.keysByPrefix["usage/"] ?? 0) <= 1, JSON.stringify(r));
  assert.ok(r.historyRevisions < 200, `${r.historyRevisions} revisions kept`);
});
