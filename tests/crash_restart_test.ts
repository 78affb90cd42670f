/**
 * VMs whose process dies while they should run, on real worker processes
 * with the sim driver: restarts with backoff up to `restart.max`, then
 * phase error; and VMs fenced by a worker paused past its deadline (but not
 * past its lease) come back.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import {
  type Cluster,
  createVm,
  simPids,
  waitFor,
  withCluster,
} from "./helpers/cluster.ts";

const create = async (app: ReturnType<typeof createApp>, name: string) =>
  (await createVm(app, name)).id;
/** How many sim processes VM `id` has. */
const running = async (id: string) => (await simPids("/")).get(id)?.length ?? 0;

function phase(c: Cluster, id: string, want: string, ms = 15_000) {
  return waitFor(
    `vm ${id} ${want}`,
    async () => {
      const v = (await c.store.get(keys.vm(id), Vm))?.value;
      return v?.status.phase === want ? v : null;
    },
    ms,
    25,
  );
}

const SIM = { UCLOUD_DRIVER: "sim" };

Deno.test("a VM that keeps crashing is restarted restart.max times, then shows phase error; a start by hand runs it again", async () => {
  await withCluster(async (c) => {
    const app = createApp({ store: c.store });
    await c.addWorker({
      name: "h1",
      env: {
        ...SIM,
        UCLOUD_RESTART_MAX: "2",
        UCLOUD_RESTART_BACKOFF_MS: "100",
      },
    });
    const id = await create(app, "loop");
    let vm = await phase(c, id, "running");
    for (let i = 1; i <= 3; i++) {
      const pid = (vm.status.handle as { pid: number }).pid;
      Deno.kill(pid, "SIGKILL");
      if (i <= 2) {
        vm = await waitFor(
          `restart ${i}`,
          async () => {
            const v = (await c.store.get(keys.vm(id), Vm))!.value;
            const p = (v.status.handle as { pid?: number } | undefined)?.pid;
            return v.status.phase === "running" && p !== pid ? v : null;
          },
          15_000,
          25,
        );
        assert.equal(vm.status.crashes?.length, i);
      }
    }
    const failed = await phase(c, id, "error");
    assert.match(failed.status.reason!, /crashed 3 times within 600 s/);
    assert.equal(await running(id), 0);
    // Not restarted again by itself.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(
      (await c.store.get(keys.vm(id), Vm))!.value.status.phase,
      "error",
    );
    const res = await app.request(`/v1/vms/${id}/start`, { method: "POST" });
    assert.equal(res.status, 202);
    const again = await phase(c, id, "running");
    assert.equal(again.status.crashes, undefined);
    assert.equal(await running(id), 1);
  }, { guest: false });
});

Deno.test("a worker paused past its deadline but within its lease: the VMs its fencer killed run again within seconds, uncounted", async () => {
  await withCluster(async (c) => {
    const app = createApp({ store: c.store });
    const w = await c.addWorker({ name: "h1", env: SIM });
    const ids = [await create(app, "p1"), await create(app, "p2")];
    for (const id of ids) await phase(c, id, "running");
    for (let round = 0; round < 2; round++) {
      Deno.kill(w.pid!, "SIGSTOP");
      // TTL 2 s, margin 0.5 s: the fencer kills at 1.5 s, etcd expires at 2 s.
      await waitFor(
        "fenced",
        async () => {
          for (const id of ids) {
            if (await running(id)) return false;
          }
          return true;
        },
        5_000,
        25,
      );
      await new Promise((r) => setTimeout(r, 1800 - 1500 + 100));
      Deno.kill(w.pid!, "SIGCONT");
      const resumed = Date.now();
      await waitFor(
        "every VM runs again, once",
        async () => {
          for (const id of ids) {
            const v = (await c.store.get(keys.vm(id), Vm))!.value;
            if (v.status.phase !== "running") return false;
            // Fenced, not crashed: no restart counted against the VM.
            assert.equal(v.status.crashes, undefined, JSON.stringify(v.status));
            if (await running(id) !== 1) return false;
          }
          return true;
        },
        10_000,
        50,
      );
      console.log(
        `round ${round}: VMs back ${Date.now() - resumed} ms after SIGCONT`,
      );
    }
  }, { guest: false, leaseTtlSeconds: 2 });
});
