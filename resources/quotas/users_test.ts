import assert from "node:assert/strict";
import { keys } from "../../core/keys.ts";
import { NO_USAGE } from "../../core/quota_schemas.ts";
import { etcdFixture, noSanitize } from "../_fixture.ts";
import { listQuotaUsers } from "./users.ts";

const admin = { name: "root", admin: true };

Deno.test({
  name:
    "listQuotaUsers() pages by name over users with usage or quota documents, each once, and refuses non-admins",
  ...noSanitize,
  fn: async () => {
    const etcd = await etcdFixture();
    try {
      const deps = etcd.deps();
      const { store } = deps;
      const set = { updatedBy: "root", updatedAt: "2026-01-01T00:00:00Z" };
      const txn = store.txn();
      // a: usage only; b: both; c: quota only; d: usage only; e: quota only.
      for (const u of ["a", "b", "d"]) {
        txn.put(keys.usage(u), { ...NO_USAGE, vms: u.charCodeAt(0) - 96 });
      }
      for (const u of ["b", "c", "e"]) {
        txn.put(keys.quota(u), { limits: { cpus: 4 }, ...set });
      }
      assert.ok((await txn.commit()).ok);
      const seen: string[] = [];
      let after: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await listQuotaUsers(deps, admin, { limit: 2, after });
        assert.ok(page.items.length <= 2);
        seen.push(...page.items.map((q) => q.user));
        if (page.next === null) break;
        after = page.next;
      }
      assert.deepEqual(seen, ["a", "b", "c", "d", "e"]);
      const all = await listQuotaUsers(deps, admin, { limit: 50 });
      assert.equal(all.next, null);
      const b = all.items.find((q) => q.user === "b")!;
      assert.equal(b.usage.vms, 2);
      assert.equal(b.limits.cpus, 4);
      assert.deepEqual(b.own, { cpus: 4 });
      await assert.rejects(
        listQuotaUsers(deps, { name: "bob", admin: false }, { limit: 5 }),
        /not an admin/,
      );
    } finally {
      await etcd.stop();
    }
  },
});
