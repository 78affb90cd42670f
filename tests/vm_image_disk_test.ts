/**
 * VMs made from an image document boot their own disk in the image store
 * (tasks/vm_disk.ts): `vm.start` creates it on the stored image at the
 * VM's size and keeps it across starts; `vm.delete` removes it. Real etcd,
 * qemu-img and qemu-io, the file store, the sim driver.
 */
import assert from "node:assert/strict";
import { keys } from "../core/keys.ts";
import { Vm } from "../core/schemas.ts";
import { SimDriver } from "../drivers/sim/driver.ts";
import type { DriverSpec } from "../tasks/context.ts";
import { PermanentError } from "../tasks/context.ts";
import { complete } from "../tasks/queue.ts";
import { vmDelete } from "../tasks/vm_delete.ts";
import { vmStart } from "../tasks/vm_start.ts";
import { exists, makeQcow2, tool, withImageEnv } from "./helpers/image_env.ts";
import { vmDoc } from "./helpers/task_ctx.ts";

const GiB = 1024 ** 3;

Deno.test("vm.start of a VM from an image boots its own disk on the stored image, sized to spec.disk and kept across starts; vm.delete removes it", async () => {
  await withImageEnv(async (env) => {
    await makeQcow2(`${env.upload}/deb.qcow2`, "1G", 0x5a);
    const img = await env.importFile("deb.qcow2", "deb");
    assert.equal(img.state, "ready", `${img.reason}`);
    const booted: DriverSpec[] = [];
    const sim = new SimDriver({ stateDir: env.bench.driver.stateDir });
    const startSim = sim.start.bind(sim);
    sim.start = (spec: DriverSpec) => (booted.push(spec), startSim(spec));
    const driver = sim;
    const vm = vmDoc("vm-d", { phase: "scheduled", host: "h1" }, {
      imageRef: "alice/deb",
      spec: { name: "d", cpus: 1, memory: 128, image: "deb", disk: 2 },
    });
    await env.bench.putVm(vm);
    const start = async () => {
      const base = await env.bench.context(env.worker, "vm.start", {
        vm: vm.id,
      }, driver);
      const ctx = { ...base, config: env.config, imageStore: env.store };
      const out = await vmStart(ctx);
      assert.ok(
        await complete(
          env.bench.store,
          ctx.task,
          env.worker,
          out.result,
          out.txn,
        ),
      );
    };
    await start();
    const disk = env.store.diskPath(vm.id);
    assert.deepEqual(booted.map((s) => s.boot), [{ disk, format: "qcow2" }]);
    const info = JSON.parse(
      await tool(
        "qemu-img",
        "info",
        "-f",
        "qcow2",
        "-U",
        "--output=json",
        disk,
      ),
    );
    assert.equal(info["virtual-size"], 2 * GiB);
    assert.equal(info["backing-filename-format"], "qcow2");
    assert.equal(info["backing-filename"], env.store.imagePath(img.storedAs!));
    // Written in the guest's life, still there at its next start.
    await tool("qemu-io", "-f", "qcow2", "-c", "write -P 0xcd 1M 64k", disk);
    const cur = (await env.bench.store.get(keys.vm(vm.id), Vm))!.value;
    await sim.fence([vm.id]);
    await env.bench.putVm({
      ...cur,
      status: {
        phase: "scheduled",
        host: "h1",
        updatedAt: cur.status.updatedAt,
      },
    });
    await start();
    assert.equal(booted.length, 2);
    assert.deepEqual(booted[1].boot, { disk, format: "qcow2" });
    await tool(
      "qemu-io",
      "-r",
      "-f",
      "qcow2",
      "-U",
      "-c",
      "read -P 0xcd 1M 64k",
      disk,
    );
    const del = await env.bench.context(
      env.worker,
      "vm.delete",
      { vm: vm.id },
      driver,
    );
    const out = await vmDelete({
      ...del,
      config: env.config,
      imageStore: env.store,
    });
    assert.ok(
      await complete(
        env.bench.store,
        del.task,
        env.worker,
        out.result,
        out.txn,
      ),
    );
    assert.equal(await exists(disk), false, "the VM's disk is removed");
    assert.equal(await exists(env.store.imagePath(img.storedAs!)), true);
  });
});

Deno.test("vm.start of a VM whose image document is gone fails for good, naming the image", async () => {
  await withImageEnv(async (env) => {
    const vm = vmDoc("vm-x", { phase: "scheduled", host: "h1" }, {
      imageRef: "alice/none",
      spec: { name: "x", cpus: 1, memory: 128, image: "none" },
    });
    await env.bench.putVm(vm);
    const base = await env.bench.context(env.worker, "vm.start", { vm: vm.id });
    await assert.rejects(
      vmStart({ ...base, config: env.config, imageStore: env.store }),
      (err: Error) =>
        err instanceof PermanentError &&
        /Image alice\/none of VM vm-x is gone/.test(err.message),
    );
    assert.deepEqual(await env.storeFiles(), []);
  });
});
