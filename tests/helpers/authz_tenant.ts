/**
 * The tenant steps of the auth matrix (issue 13, "tenants kept in their
 * lane"), on its real slapd, etcd and app: users see no host internals of
 * their VMs and tasks while admins do; an admin acting for a user is
 * recorded as both; no API credential opens `/metrics`, only an allowed
 * address does.
 */
import assert from "node:assert/strict";
import { keys } from "../../core/keys.ts";
import { Task, Vm } from "../../core/schemas.ts";
import { newTask } from "../../core/task_doc.ts";
import type { AuthzEnv } from "./authz_env.ts";

/** Runs the tenant steps; `bobVm` is bob's VM, not yet deleted. */
export async function tenantSteps(
  { step, store, call, bearerHeaders, log, app }: AuthzEnv,
  { aliceBearer, bobBearer, bobVm }: {
    aliceBearer: string;
    bobBearer: string;
    bobVm: string;
  },
): Promise<void> {
  await step(
    "users see no host internals of their VMs and tasks; admins do",
    async () => {
      // What a worker writes once it runs bob's VM, and a task's result.
      const cur = await store.get(keys.vm(bobVm), Vm);
      assert.ok(cur);
      const handle = {
        driver: "qemu",
        pid: 4242,
        dir: "/var/lib/ucloud/vms/" + bobVm,
        qmp: `/var/lib/ucloud/vms/${bobVm}/qmp.sock`,
      };
      await store.txn().put(cur.key, {
        ...cur.value,
        status: {
          ...cur.value.status,
          phase: "running",
          host: "h1",
          incarnation: "694d7cc0b9a2",
          handle,
          reason: "restarted: qemu pid 4241 exited",
        },
      }).commit();
      const task = {
        ...newTask({
          kind: "vm.start",
          target: "h1",
          payload: { vm: bobVm },
          owner: "bob",
        }),
        state: "succeeded" as const,
        result: { pid: 4242 },
      };
      await store.txn().put(keys.task(task.id), task).commit();

      const asBob = bearerHeaders(bobBearer);
      const asAlice = bearerHeaders(aliceBearer);
      const one = await call("GET", `/v1/vms/${bobVm}`, { headers: asBob });
      assert.equal(one.status, 200, one.text);
      const listed = await call("GET", "/v1/vms", { headers: asBob });
      const t = await call("GET", `/v1/tasks/${task.id}`, { headers: asBob });
      const tasks = await call("GET", "/v1/tasks", { headers: asBob });
      for (const r of [one, listed, t, tasks]) {
        assert.equal(r.status, 200, r.text);
        for (const hidden of ["4242", "4241", "/var/lib", "qmp.sock"]) {
          assert.ok(!r.text.includes(hidden), `${hidden} in ${r.text}`);
        }
        assert.ok(!r.text.includes("694d7cc0b9a2"), r.text);
      }
      const seen = one.body as Vm;
      assert.equal(seen.status.host, "h1");
      assert.equal(seen.status.phase, "running");
      assert.equal(seen.status.reason, "restarted: qemu pid <hidden> exited");
      assert.deepEqual((t.body as Task).result, {});

      const admin = await call("GET", `/v1/vms/${bobVm}`, { headers: asAlice });
      assert.deepEqual((admin.body as Vm).status.handle, handle);
      assert.equal((admin.body as Vm).status.incarnation, "694d7cc0b9a2");
      const adminTask = await call("GET", `/v1/tasks/${task.id}`, {
        headers: asAlice,
      });
      assert.deepEqual((adminTask.body as Task).result, { pid: 4242 });
      // Acting for bob, alice has bob's view.
      const acting = await call("GET", `/v1/vms/${bobVm}`, {
        headers: { ...asAlice, "x-act-as": "bob" },
      });
      assert.equal((acting.body as Vm).status.handle, undefined);
    },
  );

  await step("an admin acting for a user is recorded as both", async () => {
    const made = await call("POST", "/v1/vms", {
      headers: { ...bearerHeaders(aliceBearer), "x-act-as": "bob" },
      json: { name: "for-bob", cpus: 1, memory: 128 },
    });
    assert.equal(made.status, 201, made.text);
    const { vm, task } = made.body as { vm: Vm; task: Task };
    assert.equal(vm.owner, "bob");
    const stored = await store.get(keys.task(task.id), Task);
    assert.deepEqual(stored?.value.history[0].by, {
      user: "bob",
      actor: "alice",
    });
    const line = log.lines.map((l) => JSON.parse(l)).find((l) =>
      l.msg === "request for another user" && l.path === "/v1/vms"
    );
    assert.ok(line, "no log line names both");
    assert.equal(line.user, "bob");
    assert.equal(line.actor, "alice");
    assert.equal(line.status, 201);
    // bob's own request names bob alone; bob cannot act for alice.
    const own = await call("POST", "/v1/vms", {
      headers: bearerHeaders(bobBearer),
      json: { name: "by-bob", cpus: 1, memory: 128 },
    });
    assert.deepEqual((own.body as { task: Task }).task.history[0].by, {
      user: "bob",
    });
    const denied = await call("GET", "/v1/vms", {
      headers: { ...bearerHeaders(bobBearer), "x-act-as": "alice" },
    });
    assert.equal(denied.status, 403);
  });

  await step(
    "/metrics: no API credential opens it, an allowed address does",
    async () => {
      const scrape = async (from: string, headers: Record<string, string>) =>
        (await app.request("/metrics", { headers }, {
          remoteAddr: { hostname: from },
        })).status;
      for (const bearer of [aliceBearer, bobBearer]) {
        assert.equal(await scrape("2001:db8::7", bearerHeaders(bearer)), 403);
      }
      assert.equal(await scrape("2001:db8::7", {}), 403);
      assert.equal(await scrape("::1", {}), 200);
    },
  );
}
