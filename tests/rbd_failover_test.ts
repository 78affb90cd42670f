/**
 * Storage fencing on real components: two hosts as network namespaces, a
 * worker in each, a one-node Ceph on the bridge address, the disk guest
 * imported into RBD and booted by qemu under TCG. The VM's host is made to
 * ignore its own fencing (its fencer SIGSTOPped, its worker SIGKILLed, its
 * qemu and a `qemu-io` writer on the disk left running): the VM boots on
 * the other host from the same disk, whose `vm.start` block-listed the old
 * host's clients before its qemu started, and the old writer's writes fail.
 */
import assert from "node:assert/strict";
import { imageRef } from "../core/image_schemas.ts";
import type { Image } from "../core/image_schemas.ts";
import { keys } from "../core/keys.ts";
import { Task, Vm } from "../core/schemas.ts";
import { enqueue, newTask } from "../core/task_doc.ts";
import { addressIp, watchers } from "../drivers/images/rbd_fence.ts";
import { RbdStore } from "../drivers/images/rbd_store.ts";
import { run } from "../drivers/runner.ts";
import { fencerPidFile } from "../workers/fence.ts";
import { type CephCluster, startCeph } from "./helpers/ceph.ts";
import { type Cluster, startCluster, waitFor } from "./helpers/cluster.ts";
import { ensureDiskGuest } from "./helpers/disk_guest.ts";
import { createHostNet, type HostNet } from "./helpers/netns.ts";
import { serveEtcdOn, startWorkerIn } from "./helpers/ns_worker.ts";
import { qemuByHost } from "./helpers/qemu_by_host.ts";
import { QemuIo } from "./helpers/qemu_io.ts";

const HOSTS = ["h1", "h2"];
const VM = "vm-rbd-fo";
const MARKER = "UCLOUD-GUEST-READY";
/** TCG boots of BIOS, extlinux and the kernel on a loaded 2-core machine. */
const BOOT_MS = 240_000;
const GiB = 1024 ** 3;
/** /proc times are in clock ticks (USER_HZ 100): 10 ms each. */
const TICK_MS = 10;

function log(what: string, fields: Record<string, unknown> = {}) {
  console.log(JSON.stringify({ test: "rbd_failover", what, ...fields }));
}

async function vmDoc(c: Cluster): Promise<Vm | undefined> {
  return (await c.store.get(keys.vm(VM), Vm))?.value;
}

/** Pids of the VM's qemu in each host's namespace. */
async function qemus(net: HostNet): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [host, procs] of await qemuByHost(net)) {
    out.set(host, procs.filter((p) => p.vmId === VM).map((p) => p.pid));
  }
  return out;
}

/** When process `pid` started, by the wall clock (within two ticks). */
async function startedAt(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  const now = Date.now();
  const uptime = Number(
    (await Deno.readTextFile("/proc/uptime")).split(" ")[0],
  );
  return now - (uptime * 1000 - ticks * TICK_MS);
}

async function serialHas(c: Cluster, host: string): Promise<boolean> {
  const file = `${c.workers.get(host)!.stateDir}/vms/${VM}/serial.log`;
  return (await Deno.readTextFile(file).catch(() => "")).includes(MARKER);
}

/** The image document of an import, as image.import records it. */
function imageDoc(storedAs: string, stored: {
  virtualSize: number;
  storedSize: number;
  sha256: string;
}): Image {
  const now = new Date().toISOString();
  return {
    name: "guest",
    owner: "alice",
    public: false,
    state: "ready",
    source: { kind: "file", file: "guest.qcow2" },
    format: "raw",
    store: "rbd",
    storedAs,
    ...stored,
    createdAt: now,
    updatedAt: now,
  };
}

Deno.test("a VM on an RBD disk whose host ignores fencing boots on the other host after its old clients were block-listed; the old writer's writes fail", async () => {
  const base = await ensureDiskGuest();
  const c = await startCluster({ leaseTtlSeconds: 3 });
  const net = await createHostNet(HOSTS);
  let ceph: CephCluster | undefined;
  let writer: QemuIo | undefined;
  try {
    await serveEtcdOn(c, net);
    ceph = await startCeph({ addr: net.etcdAddress });
    const pool = ceph.pool;
    await Deno.writeTextFile(
      c.env.UCLOUD_CONFIG,
      JSON.stringify({
        images: { store: "rbd", rbd: { ...pool, cephConf: pool.conf } },
      }),
    );
    const store = new RbdStore({
      pool,
      tmpDir: `${c.dir}/import`,
      maxVirtualBytes: GiB,
      maxSourceBytes: GiB,
    });
    const upload = `${c.dir}/guest.qcow2`;
    await Deno.copyFile(base, upload);
    const storedAs = "alice/guest-t-1";
    const stored = await store.importImage(upload, storedAs, async () => {});
    for (const h of HOSTS) {
      await startWorkerIn(c, net, { name: h, cpus: 4, memoryMiB: 1024 });
    }
    await waitFor(
      "2 hosts alive",
      async () => (await c.store.count(keys.alives)) === 2,
      30_000,
    );
    const now = new Date().toISOString();
    const vm: Vm = {
      id: VM,
      owner: "alice",
      imageRef: imageRef("alice", "guest"),
      spec: { name: "rbd-fo", cpus: 1, memory: 128, image: "guest", disk: 1 },
      nics: [],
      desired: "running",
      status: { phase: "pending", updatedAt: now },
      createdAt: now,
    };
    const create = newTask({
      kind: "vm.create",
      target: "any",
      payload: { vm: VM },
      owner: "alice",
      maxAttempts: c.config.tasks.maxAttempts,
    });
    const txn = c.store.txn()
      .put(keys.image(vm.imageRef!), imageDoc(storedAs, stored))
      .ifAbsent(keys.vm(VM)).put(keys.vm(VM), vm);
    assert.ok((await enqueue(txn, create).commit()).ok);

    const old = await waitFor(
      "the VM running on a host",
      async () => {
        const doc = await vmDoc(c);
        return doc?.status.phase === "running" && doc.status.host;
      },
      BOOT_MS,
      200,
    );
    const next = HOSTS.find((h) => h !== old)!;
    await waitFor(`${MARKER} on ${old}`, () => serialHas(c, old), BOOT_MS, 250);
    const [oldQemu] = (await qemus(net)).get(old)!;
    assert.ok(oldQemu, `a qemu of ${VM} in ${old}`);
    const disk = store.diskPath(VM);
    assert.match(disk, /^rbd:ucloud\/disk\.vm-rbd-fo:/);

    // A second writer on the old host, as a qemu that runs on would be.
    writer = await QemuIo.open("raw", disk, { netns: net.host(old).ns });
    assert.match(await writer.command("write -P 0x44 512M 64k"), /^wrote/);
    const before = await watchers(pool, store.diskName(VM));
    log("clients of the disk before", { old, watchers: before });
    assert.equal(before.length, 2, "the old qemu and the writer");
    for (const w of before) {
      assert.equal(addressIp(w.address), net.host(old).address);
    }

    // The old host ignores its fencing: its fencer stops, its worker dies.
    const fencer = Number(
      await Deno.readTextFile(fencerPidFile(c.workers.get(old)!.runDir)),
    );
    Deno.kill(fencer, "SIGSTOP");
    const killedAt = Date.now();
    await c.workers.get(old)!.kill("SIGKILL");

    await waitFor(
      `the VM running on ${next}`,
      async () => {
        const doc = await vmDoc(c);
        return doc?.status.phase === "running" && doc.status.host === next;
      },
      BOOT_MS,
      200,
    );
    const [newQemu] = (await qemus(net)).get(next)!;
    assert.ok(newQemu, `a qemu of ${VM} in ${next}`);
    const newStart = await startedAt(newQemu);
    assert.deepEqual((await qemus(net)).get(old), [oldQemu], "it runs on");

    // vm.start on the new host fenced exactly the old host's clients ...
    const start = (await c.store.list(keys.tasks, Task)).items.map((t) =>
      t.value
    ).find((t) =>
      t.kind === "vm.start" && t.target === next && t.state === "succeeded"
    );
    assert.ok(start, `a succeeded vm.start on ${next}`);
    const fenced = (start.result as { fenced?: string[] }).fenced ?? [];
    assert.deepEqual(
      [...fenced].sort(),
      before.map((w) => w.address).sort(),
    );
    const listed = await run("ceph", [
      "--conf",
      pool.conf,
      "osd",
      "blocklist",
      "ls",
      "--format",
      "json",
    ]);
    // JSON and "listed N entries" run together: look for each address.
    for (const a of fenced) {
      assert.ok(listed.stdout.includes(`"${a}"`), `${a} in ${listed.stdout}`);
    }
    // ... before its qemu started (the log line follows the blocklist).
    const line = (await c.workers.get(next)!.log()).split("\n")
      .filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      .find((l) =>
        l.msg === "block-listed other hosts' clients of the VM's disk"
      );
    assert.ok(line, "the fence is logged");
    assert.deepEqual(line.addresses, fenced);
    const fencedAt = Date.parse(line.ts);
    log("fenced, then started", {
      afterKillMs: fencedAt - killedAt,
      qemuStartAfterFenceMs: newStart - fencedAt,
    });
    assert.ok(
      fencedAt <= newStart + 2 * TICK_MS,
      `fenced at ${fencedAt}, new qemu started at ${newStart}`,
    );

    // The VM boots from the same disk; the old writer is refused.
    await waitFor(`${MARKER} on ${next}`, () => serialHas(c, next), BOOT_MS);
    const refused = await writer.command("write -P 0x45 512M 4k");
    log("the old writer's write", { reply: refused });
    assert.match(refused, /failed/);
    await run("qemu-io", [
      "-r",
      "-f",
      "raw",
      "-c",
      "read -P 0x44 512M 64k",
      disk,
    ]);
    const after = await watchers(pool, store.diskName(VM));
    assert.deepEqual(
      after.map((w) => addressIp(w.address)),
      [net.host(next).address],
      "only the new host's qemu has the disk open",
    );
  } catch (err) {
    await c.printLogs();
    throw err;
  } finally {
    await writer?.close();
    await c.stop();
    await net.destroy();
    await ceph?.stop();
  }
});
