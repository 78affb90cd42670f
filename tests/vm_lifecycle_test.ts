/**
 * End to end on real components: the API app, a worker process, etcd and
 * qemu under TCG booting the tiny test guest.
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { keys } from "../core/keys.ts";
import { Task, Vm } from "../core/schemas.ts";
import { queryStatus } from "../drivers/qemu/qmp.ts";
import {
  type Cluster,
  dump,
  qemuPids,
  waitFor,
  withCluster,
} from "./helpers/cluster.ts";

type App = ReturnType<typeof createApp>;

async function api(app: App, method: string, path: string, body?: unknown) {
  const res = await app.request(path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

async function vmDoc(c: Cluster, id: string): Promise<Vm | null> {
  return (await c.store.get(keys.vm(id), Vm))?.value ?? null;
}

async function waitPhase(c: Cluster, id: string, phase: string, ms = 30_000) {
  return await waitFor(`vm ${id} phase ${phase}`, async () => {
    const vm = await vmDoc(c, id);
    return vm?.status.phase === phase ? vm : null;
  }, ms);
}

function withApp(f: (c: Cluster, app: App) => Promise<void>) {
  return withCluster((c) => f(c, createApp({ store: c.store })));
}

Deno.test("a VM created through the API boots, and delete removes process, files and keys", async () => {
  await withApp(async (c, app) => {
    await c.addWorker({ name: "h1" });
    const created = await api(app, "POST", "/v1/vms", {
      name: "web1",
      cpus: 1,
      memory: 128,
    });
    assert.equal(created.status, 201);
    const id = created.body.vm.id as string;
    const vm = await waitPhase(c, id, "running");
    assert.equal(vm.status.host, "h1");
    const handle = vm.status.handle as {
      pid: number;
      qmp: string;
      serial: string;
      dir: string;
    };
    assert.deepEqual(await qemuPids(`/vms/${id}/`), [handle.pid]);
    assert.equal(await queryStatus(handle.qmp), "running");
    await waitFor(
      "guest marker on the serial console",
      async () =>
        (await Deno.readTextFile(handle.serial)).includes("UCLOUD-GUEST-READY"),
      30_000,
      200,
    );
    // The reservation is recorded and shown by the hosts endpoint.
    const hosts = await api(app, "GET", "/v1/hosts");
    assert.equal(hosts.body.items[0].usage.cpus, 1);
    assert.equal(hosts.body.items[0].usage.memoryMiB, 128);
    assert.equal(hosts.body.items[0].alive, true);

    const del = await api(app, "DELETE", `/v1/vms/${id}`);
    assert.equal(del.status, 202);
    await waitFor("vm document gone", async () => !(await vmDoc(c, id)));
    assert.deepEqual(await qemuPids(`/vms/${id}/`), []);
    await assert.rejects(Deno.stat(handle.dir), Deno.errors.NotFound);
    const left = Object.keys(await dump(c.store)).filter((k) =>
      k.includes(id) || k.startsWith("queue/") || k.startsWith("claim/")
    );
    assert.deepEqual(left, []);
    const alloc = await api(app, "GET", "/v1/hosts");
    assert.equal(alloc.body.items[0].usage.vms, 0);
    const tasks = (await c.store.list(keys.tasks, Task)).items.map((t) =>
      t.value
    );
    assert.deepEqual(
      tasks.map((t) => [t.kind, t.state]).sort(),
      [["vm.create", "succeeded"], ["vm.delete", "succeeded"], [
        "vm.start",
        "succeeded",
      ]],
    );
  });
});

Deno.test("stop and start a VM; a VM killed outside ucloud shows as crashed and is restarted", async () => {
  await withApp(async (c, app) => {
    await c.addWorker({ name: "h1" });
    const { body } = await api(app, "POST", "/v1/vms", {
      name: "a",
      cpus: 1,
      memory: 128,
    });
    const id = body.vm.id as string;
    const first = await waitPhase(c, id, "running");
    const pid1 = (first.status.handle as { pid: number }).pid;
    assert.equal((await api(app, "POST", `/v1/vms/${id}/stop`)).status, 202);
    await waitPhase(c, id, "stopped");
    assert.deepEqual(await qemuPids(`/vms/${id}/`), []);
    assert.equal((await api(app, "POST", `/v1/vms/${id}/start`)).status, 202);
    const again = await waitPhase(c, id, "running");
    const pid2 = (again.status.handle as { pid: number }).pid;
    assert.notEqual(pid2, pid1);
    Deno.kill(pid2, "SIGKILL");
    const crashed = await waitPhase(c, id, "crashed", 10_000);
    assert.match(crashed.status.reason!, new RegExp(`pid ${pid2}`));
    assert.match(
      crashed.status.reason!,
      /restarting in 1\.0 s \(restart 1 of 5/,
    );
    const back = await waitPhase(c, id, "running", 30_000);
    const pid3 = (back.status.handle as { pid: number }).pid;
    assert.notEqual(pid3, pid2);
    assert.deepEqual(await qemuPids(`/vms/${id}/`), [pid3]);
    assert.equal(back.status.crashes?.length, 1);
    assert.match(back.status.crashes![0].reason, new RegExp(`pid ${pid2}`));
  });
});
