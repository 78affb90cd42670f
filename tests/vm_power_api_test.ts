/**
 * `POST /v1/vms/{id}/stop` and `/reboot` with their options, against a real
 * etcd: what the tasks carry, and that a rejected request leaves etcd as
 * it was.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { startEtcd } from "../core/etcd_server.ts";
import { keys } from "../core/keys.ts";
import { Task, Vm } from "../core/schemas.ts";
import { Store } from "../core/store.ts";
import { assertError, call, dump, noSanitize } from "./helpers/api.ts";

/** A VM as a worker leaves it: running on `host`. */
async function runningVm(store: Store, id: string, host = "h1"): Promise<Vm> {
  const now = new Date().toISOString();
  const vm: Vm = {
    id,
    owner: "local",
    spec: { name: id, cpus: 1, memory: 128, image: "tiny" },
    nics: [],
    desired: "running",
    status: { phase: "running", host, updatedAt: now },
    createdAt: now,
  };
  assert.ok((await store.txn().put(keys.vm(id), vm).commit()).ok);
  return vm;
}

Deno.test({
  name:
    "api: stop and reboot take force and timeoutSeconds; bad values are 400s",
  ...noSanitize,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "ucloud-power-api-" });
    const etcd = await startEtcd({ dataDir: dir });
    const store = Store.connect({ endpoints: [etcd.endpoint], prefix: "/p" });
    const app = createApp({ store });
    const step = (name: string, fn: () => Promise<void>) =>
      t.step({ name, ...noSanitize, fn });
    try {
      await step(
        "bad stop and reboot options are 400s naming the field",
        async () => {
          await runningVm(store, "vm-bad");
          const before = await dump(store);
          for (const action of ["stop", "reboot"]) {
            for (
              const [json, field] of [
                [{ timeoutSeconds: 0 }, "timeoutSeconds"],
                [{ timeoutSeconds: -5 }, "timeoutSeconds"],
                [{ timeoutSeconds: 1.5 }, "timeoutSeconds"],
                [{ timeoutSeconds: 3601 }, "timeoutSeconds"],
                [{ timeoutSeconds: "30" }, "timeoutSeconds"],
                [{ force: "yes" }, "force"],
              ] as const
            ) {
              const r = await call(app, "POST", `/v1/vms/vm-bad/${action}`, {
                json,
              });
              assertError(r, 400, field);
            }
            const extra = await call(app, "POST", `/v1/vms/vm-bad/${action}`, {
              json: { hard: true },
            });
            assert.equal(extra.status, 400, JSON.stringify(extra.body));
          }
          assert.deepEqual(await dump(store), before);
        },
      );

      await step("stop hands force and timeoutSeconds to vm.stop", async () => {
        await runningVm(store, "vm-a");
        const r = await call(app, "POST", "/v1/vms/vm-a/stop", {
          json: { force: true, timeoutSeconds: 5 },
        });
        assert.equal(r.status, 202, JSON.stringify(r.body));
        assert.equal(r.body.vm.status.phase, "stopping");
        assert.equal(r.body.task.kind, "vm.stop");
        assert.equal(r.body.task.target, "h1");
        assert.deepEqual(r.body.task.payload, {
          vm: "vm-a",
          force: true,
          timeoutSeconds: 5,
        });
        // Without a body: the host's defaults.
        await runningVm(store, "vm-b");
        const plain = await call(app, "POST", "/v1/vms/vm-b/stop");
        assert.equal(plain.status, 202, JSON.stringify(plain.body));
        assert.deepEqual(plain.body.task.payload, { vm: "vm-b" });
      });

      await step(
        "reboot enqueues vm.reboot on the host and leaves the VM as it is",
        async () => {
          const vm = await runningVm(store, "vm-r", "h2");
          const seen = await store.get(keys.vm("vm-r"), Vm);
          const r = await call(app, "POST", "/v1/vms/vm-r/reboot", {
            json: { timeoutSeconds: 10 },
          });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          assert.deepEqual(r.body.vm, vm);
          assert.equal(r.body.task.kind, "vm.reboot");
          assert.equal(r.body.task.target, "h2");
          assert.deepEqual(r.body.task.payload, {
            vm: "vm-r",
            timeoutSeconds: 10,
          });
          const after = await store.get(keys.vm("vm-r"), Vm);
          assert.equal(after?.modRevision, seen?.modRevision);
          const task = await store.get(keys.task(r.body.task.id), Task);
          assert.equal(task?.value.state, "queued");
          const forced = await call(app, "POST", "/v1/vms/vm-r/reboot", {
            json: { force: true },
          });
          assert.deepEqual(forced.body.task.payload, {
            vm: "vm-r",
            force: true,
          });
        },
      );

      await step("reboot of a VM that does not run is a 409", async () => {
        await runningVm(store, "vm-s");
        assert.equal(
          (await call(app, "POST", "/v1/vms/vm-s/stop")).status,
          202,
        );
        const before = await dump(store);
        const r = await call(app, "POST", "/v1/vms/vm-s/reboot");
        assertError(r, 409, undefined, /Cannot reboot VM vm-s: it is stopping/);
        assert.deepEqual(await dump(store), before);
        assertError(
          await call(app, "POST", "/v1/vms/vm-nope/reboot"),
          404,
          undefined,
          /Cannot find vm/,
        );
      });
    } finally {
      store.close();
      await etcd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
