/**
 * Keys that record history expire (issue 13, DESIGN.md rule 8), on a real
 * etcd: idempotency keys and failover records are bound to shared 24 h
 * leases (core/lease_pool.ts) and work as before within them; a scheduled
 * round's `cron-round/` key carries its lock's short lease. TOTP replay
 * records carry theirs (tests/auth_totp_stores_test.ts).
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { ConfigSchema } from "../core/config.ts";
import { keys } from "../core/keys.ts";
import { LeasePool } from "../core/lease_pool.ts";
import type { Store } from "../core/store.ts";
import { IDEMPOTENCY_TTL_SECONDS } from "../resources/vms/idempotency.ts";
import {
  enqueueHostFailed,
  FAILOVER_TTL_SECONDS,
} from "../tasks/host_failed.ts";
import {
  maintenanceOnce,
  ROUND_TTL_SECONDS,
} from "../tasks/maintenance_round.ts";
import { rebalanceOnce } from "../tasks/rebalance_round.ts";
import { call, noSanitize } from "./helpers/api.ts";
import { input } from "./helpers/api_fixtures.ts";
import { withApiEnv } from "./helpers/api_env.ts";

/** The lease of `key` and its remaining and granted TTL, seconds. */
async function leaseOf(store: Store, key: string) {
  const kv = await store.get(key, z.unknown());
  assert.ok(kv, `${key} exists`);
  assert.notEqual(kv.lease, "0", `${key} is bound to a lease`);
  const t = await store.client.leaseClient.leaseTimeToLive({ ID: kv.lease });
  return { id: kv.lease, ttl: Number(t.TTL), granted: Number(t.grantedTTL) };
}

Deno.test({
  name: "keys that record history expire with their lease",
  ...noSanitize,
  fn: (t) =>
    withApiEnv(t, async ({ fresh, connect, step, create }) => {
      await step(
        "an Idempotency-Key is kept on a 24 h lease: a repeat within it gets the first VM, after it a new one",
        async () => {
          const { store, app } = fresh();
          const headers = { "Idempotency-Key": "req-1" };
          const first = await create(app, input, { headers });
          const again = await call(app, "POST", "/v1/vms", {
            json: input,
            headers,
          });
          assert.equal(again.status, 200);
          assert.equal(again.body.vm.id, first.vm.id);
          const key = keys.idempotency("local", "req-1");
          const lease = await leaseOf(store, key);
          assert.ok(lease.ttl >= IDEMPOTENCY_TTL_SECONDS - 5, `${lease.ttl}`);
          assert.ok(lease.granted <= IDEMPOTENCY_TTL_SECONDS + 60);
          // Keys of the same minute share the lease.
          await create(app, input, { headers: { "Idempotency-Key": "req-2" } });
          const other = await leaseOf(
            store,
            keys.idempotency("local", "req-2"),
          );
          assert.equal(other.id, lease.id);

          // What the lease's end does: the record is gone.
          await store.txn().delete(key).commit();
          const later = await call(app, "POST", "/v1/vms", {
            json: input,
            headers,
          });
          assert.equal(later.status, 201);
          assert.notEqual(later.body.vm.id, first.vm.id);
        },
      );

      await step(
        "failover/<host>/<incarnation> is kept on a 24 h lease and still enqueues host.failed once",
        async () => {
          const store = connect();
          const first = await enqueueHostFailed(store, "h1", "inc-1");
          assert.ok(first);
          assert.equal(await enqueueHostFailed(store, "h1", "inc-1"), null);
          const lease = await leaseOf(store, keys.failover("h1", "inc-1"));
          assert.ok(lease.ttl >= FAILOVER_TTL_SECONDS - 5, `${lease.ttl}`);
          assert.ok(lease.granted <= FAILOVER_TTL_SECONDS + 60);
          assert.equal(await store.count(keys.tasks), 1);
        },
      );

      await step(
        "a scheduled round's cron-round key carries its lock's lease, and the round runs once",
        async () => {
          const store = connect();
          const config = {
            ...ConfigSchema.parse({}),
            scheduler: {
              ...ConfigSchema.shape.scheduler.parse(undefined),
              rebalanceMaxMoves: 0,
            },
          };
          const round = "2026-01-01T12:00";
          const m = await maintenanceOnce(store, config, { by: "h1", round });
          assert.equal(m.ran, true, m.reason);
          const again = await maintenanceOnce(store, config, {
            by: "h2",
            round,
          });
          assert.equal(again.ran, false);
          assert.match(again.reason, /already ran/);
          const ml = await leaseOf(store, keys.cronRound("maintenance", round));
          assert.ok(ml.granted <= ROUND_TTL_SECONDS, `${ml.granted}`);

          const r = await rebalanceOnce(store, config, { by: "h1", round });
          assert.equal(r.ran, true, r.reason);
          const rl = await leaseOf(store, keys.cronRound("rebalance", round));
          assert.ok(rl.granted <= 90, `${rl.granted}`);
          // The locks themselves are gone once the rounds ended.
          assert.equal(await store.count("cron/"), 0);
        },
      );

      await step(
        "LeasePool takes a new lease after rotateSeconds or maxKeys",
        async () => {
          const store = connect();
          let now = 0;
          const pool = new LeasePool(store, 30, {
            rotateSeconds: 10,
            maxKeys: 2,
            now: () => now,
          });
          const a = await pool.take();
          assert.equal(await pool.take(), a);
          const b = await pool.take();
          assert.notEqual(b, a, "a third key needs a new lease");
          now = 10_000;
          const c = await pool.take();
          assert.notEqual(c, b, "after rotateSeconds a new lease");
          const ttl = await store.client.leaseClient.leaseTimeToLive({ ID: c });
          assert.equal(Number(ttl.grantedTTL), 40);
        },
      );

      await step(
        "LeasePool: a lease revoked while it is handed out costs one refused write, the next take() grants a new one",
        async () => {
          const store = connect();
          const pool = new LeasePool(store, 3600);
          const a = await pool.take();
          assert.ok(
            (await store.txn().put("pool/1", {}, { lease: a }).commit()).ok,
          );
          await store.revokeLease(a);
          const same = await pool.take();
          assert.equal(same, a, "the pool cannot know before etcd says");
          await assert.rejects(
            store.txn().put("pool/2", {}, { lease: same }).commit(),
            /lease not found/,
          );
          const b = await pool.take();
          assert.notEqual(b, a);
          assert.ok(
            (await store.txn().put("pool/3", {}, { lease: b }).commit()).ok,
          );
          assert.equal(await pool.take(), b, "the new lease is shared again");
        },
      );
    }),
});
