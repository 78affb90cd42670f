/**
 * A guest that powers itself off (real qemu under TCG, the tiny guest's
 * acpid): the VM ends stopped with the reason, its qemu process is gone,
 * nothing restarts it and no crash is counted (workers/guest_poweroff.ts).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import { QmpClient } from "../drivers/qemu/qmp.ts";
import { qemuPids, waitFor, withCluster } from "./helpers/cluster.ts";

Deno.test("a guest that powers itself off leaves its VM stopped with the reason, not crashed or restarted", async () => {
  await withCluster(async (c) => {
    const w = await c.addWorker({ name: "h1" });
    const app = createApp({ store: c.store });
    const res = await app.request("/v1/vms", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "off", cpus: 1, memory: 128 }),
    });
    assert.equal(res.status, 201);
    const id = (await res.json()).vm.id as string;
    const running = await waitFor("vm running", async () => {
      const v = (await c.store.get(keys.vm(id), Vm))?.value;
      return v?.status.phase === "running" && v;
    }, 60_000);
    const handle = running.status.handle as { qmp: string; serial: string };
    // The guest's acpid runs once its init printed the ready marker.
    await waitFor("guest ready", async () => {
      const log = await Deno.readTextFile(handle.serial).catch(() => "");
      return log.includes("UCLOUD-GUEST-READY");
    }, 120_000);

    // The power button pressed from outside ucloud: the guest's acpid
    // runs poweroff, which qemu (-no-shutdown) sees as state "shutdown".
    const qmp = await QmpClient.connect(handle.qmp);
    try {
      await qmp.execute("system_powerdown");
    } finally {
      await qmp.close();
    }
    const stopped = await waitFor("vm stopped by its guest", async () => {
      const v = (await c.store.get(keys.vm(id), Vm))?.value;
      return v?.status.phase === "stopped" && v;
    }, 60_000);
    assert.equal(stopped.desired, "stopped");
    assert.match(stopped.status.reason ?? "", /the guest powered itself off/);
    assert.equal(stopped.status.crashes, undefined);
    assert.equal(stopped.status.handle, undefined);
    await waitFor(
      "qemu gone",
      async () => (await qemuPids(w.stateDir)).length === 0,
      30_000,
    );
    // Nothing brings it back.
    await new Promise((r) => setTimeout(r, 3000));
    const later = (await c.store.get(keys.vm(id), Vm))!.value;
    assert.equal(later.status.phase, "stopped");
    assert.equal((await qemuPids(w.stateDir)).length, 0);
  });
});
