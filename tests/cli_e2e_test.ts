/**
 * The CLI (`bin/ucloud`) against the real API over HTTP, a worker and qemu
 * (or the sim driver, where only the control plane matters).
 */
import assert from "node:assert/strict";
import { createApp } from "../api/app.ts";
import { eui64, inPrefix6 } from "../core/netaddr.ts";
import { z } from "zod";
import { qemuPids, ROOT, startCluster, waitFor } from "./helpers/cluster.ts";

const MARKER = "UCLOUD-GUEST-READY";

async function ucloud(api: string, ...args: string[]) {
  const out = await new Deno.Command(`${ROOT}bin/ucloud`, {
    args,
    env: { UCLOUD_API: api },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("ucloud CLI creates, lists, reboots, stops (gracefully and --force), starts and deletes a VM end to end", async () => {
  const c = await startCluster();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createApp({ store: c.store }).fetch,
  );
  const api = `http://127.0.0.1:${server.addr.port}`;
  try {
    await c.addWorker({ name: "h1" });
    const bad = await ucloud(
      api,
      "vm",
      "create",
      "--name",
      "w",
      "--cpus",
      "0",
      "--memory",
      "128",
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--cpus/);

    const created = await ucloud(
      api,
      "vm",
      "create",
      "--name",
      "web1",
      "--cpus",
      "1",
      "--memory",
      "128",
    );
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /is running on h1/);
    assert.match(created.stderr, /pending|scheduled|starting|running/);

    const list = await ucloud(api, "vm", "list");
    assert.match(list.stdout, /^ID\s+NAME\s+CPUS\s+MEM\s+PHASE\s+HOST/m);
    assert.match(list.stdout, /web1\s+1\s+128Mi\s+running\s+h1/);
    const json = JSON.parse(
      (await ucloud(api, "vm", "show", "web1", "--json")).stdout,
    );
    assert.equal(json.spec.name, "web1");
    const pids = await qemuPids(`/vms/${json.id}/`);
    assert.equal(pids.length, 1);

    // ctrl-alt-delete reaches a guest whose init is up: wait for its marker.
    const serial = `${c.workers.get("h1")!.stateDir}/vms/${json.id}/serial.log`;
    const markers = async () =>
      (await Deno.readTextFile(serial).catch(() => "")).split(MARKER).length -
      1;
    await waitFor("the guest marker", async () => await markers() >= 1, 90_000);
    const rebooted = await ucloud(api, "vm", "reboot", "web1");
    assert.equal(rebooted.code, 0, rebooted.stderr);
    assert.match(
      rebooted.stdout,
      /^vm web1 \(vm-\S+\) rebooted \([0-9.]+s\): the guest rebooted\n$/,
    );
    await waitFor("the second boot", async () => await markers() >= 2, 90_000);
    const reset = await ucloud(api, "vm", "reboot", "web1", "--force");
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /rebooted \([0-9.]+s\): reset \(--force\)\n$/);
    await waitFor("the third boot", async () => await markers() >= 3, 90_000);
    assert.deepEqual(await qemuPids(`/vms/${json.id}/`), pids, "same qemu");

    const stopped = await ucloud(api, "vm", "stop", "web1");
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /: the guest shut down in [0-9.]+s\n$/);
    assert.match(await Deno.readTextFile(serial), /UCLOUD-GUEST-SHUTDOWN/);
    assert.equal((await qemuPids(`/vms/${json.id}/`)).length, 0);
    assert.equal((await ucloud(api, "vm", "start", "web1")).code, 0);
    assert.equal((await qemuPids(`/vms/${json.id}/`)).length, 1);

    const hosts = await ucloud(api, "host", "list");
    assert.match(hosts.stdout, /h1\s+active\s+yes\s+1\/4/);
    const tasks = await ucloud(api, "task", "list", "--vm", json.id);
    assert.match(tasks.stdout, /vm\.create/);
    assert.match(tasks.stdout, /vm\.stop/);

    const forced = await ucloud(api, "vm", "stop", "web1", "--force");
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(
      forced.stdout,
      /is stopped \([0-9.]+s\): stopped hard \(--force\)\n$/,
    );
    assert.equal((await qemuPids(`/vms/${json.id}/`)).length, 0);

    const del = await ucloud(api, "vm", "delete", "web1");
    assert.equal(del.code, 0, del.stderr);
    assert.equal((await qemuPids(`/vms/${json.id}/`)).length, 0);
    const missing = await ucloud(api, "vm", "show", json.id);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found|Cannot find/i);
  } finally {
    await server.shutdown();
    await c.stop();
  }
});

Deno.test("ucloud CLI creates networks, gives a VM NICs in them and deletes them end to end", async () => {
  const c = await startCluster({ guest: false });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createApp({ store: c.store }).fetch,
  );
  const api = `http://127.0.0.1:${server.addr.port}`;
  const ok = async (...args: string[]) => {
    const r = await ucloud(api, ...args);
    assert.equal(r.code, 0, `ucloud ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  try {
    // The worker runs the VM's delete. The VM asks for more CPUs than the
    // host has, so it stays pending and never starts: nothing here needs
    // the host's networking.
    await c.addWorker({ name: "h1", cpus: 4 });
    assert.match(
      await ok("network", "create", "--name", "lan"),
      /^network lan \(net-[^)]+\) created: private, fdc1:d00:[0-9a-f:]*\/64, VNI \d+ \(multicast\)\n$/,
    );
    await ok("network", "create", "--name", "dmz", "--ipv4", "10.9.0.0/24");
    const bad = await ucloud(
      api,
      "network",
      "create",
      "--name",
      "x",
      "--dhcp4",
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--dhcp4 needs --ipv4/);

    assert.match(
      await ok("network", "list"),
      /^ID +NAME +KIND +PREFIX +IPV4 +VNI +BRIDGE +VMS\n/,
    );
    assert.match(
      await ok("network", "list"),
      /^net-\S+ +dmz +private +fdc1:d00:\S+\/64 +10\.9\.0\.0\/24 +\d+ +- +0$/m,
    );
    const lan = JSON.parse(await ok("network", "show", "lan", "--json"));
    const dmz = JSON.parse(await ok("network", "show", "dmz", "--json"));
    assert.equal(lan.name, "lan");
    assert.notEqual(lan.prefix, dmz.prefix);
    const shown = await ok("network", "show", "lan");
    assert.match(shown, new RegExp(`^id: +${lan.id}$`, "m"));
    assert.match(shown, /^vms: +none$/m);

    assert.match(
      await ok(
        "vm",
        "create",
        "--name",
        "nic1",
        "--cpus",
        "8",
        "--memory",
        "128",
        "--network",
        "lan",
        "--no-wait",
      ),
      /^vm nic1 \(vm-\S+\): create accepted as task/,
    );
    const vm = JSON.parse(await ok("vm", "show", "nic1", "--json"));
    assert.equal(vm.status.phase, "pending");
    assert.equal(vm.nics.length, 1);
    const [nic] = vm.nics;
    assert.equal(nic.slot, 0);
    assert.equal(nic.network, lan.id);
    assert.equal(nic.state, "attached");
    assert.ok(inPrefix6(nic.ipv6, lan.prefix), `${nic.ipv6} in ${lan.prefix}`);
    assert.equal(nic.ipv6, eui64(lan.prefix, nic.mac));
    const table = await ok("vm", "show", "nic1");
    assert.match(table, /\nnics:\n {2}SLOT +NETWORK +MAC +IPV6 +IPV4 +STATE\n/);
    assert.ok(
      table.includes(
        `     0  lan (${lan.id})  ${nic.mac}  ${nic.ipv6}  -     attached`,
      ),
      table,
    );

    // A pending VM gets a second NIC at once: no task, nothing to plug in.
    assert.match(
      await ok("vm", "attach", "nic1", "--network", dmz.id),
      new RegExp(
        `^vm nic1 \\(${vm.id}\\) has NIC 1 in network dmz \\(${dmz.id}\\): ` +
          "MAC \\S+, IPv6 \\S+, IPv4 10\\.9\\.0\\.2; the VM gets it when it starts\n$",
      ),
    );
    const two = JSON.parse(await ok("vm", "show", vm.id, "--json")).nics;
    assert.deepEqual(two.map((n: { network: string }) => n.network), [
      lan.id,
      dmz.id,
    ]);
    assert.ok(inPrefix6(two[1].ipv6, dmz.prefix));
    assert.equal(
      await ok("vm", "detach", "nic1", "--network", "dmz"),
      `vm nic1 (${vm.id}): NIC 1 in network dmz (${dmz.id}) is removed\n`,
    );
    assert.equal(
      JSON.parse(await ok("vm", "show", vm.id, "--json")).nics.length,
      1,
    );
    assert.equal(
      await ok("network", "delete", "dmz"),
      `network dmz (${dmz.id}) deleted\n`,
    );

    const refused = await ucloud(api, "network", "delete", "lan");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`VMs ${vm.id} have NICs in it`));
    assert.match(
      await ok("network", "show", lan.id),
      new RegExp(`^vms: +${vm.id}$`, "m"),
    );

    await ok("vm", "delete", "nic1", "--timeout", "60");
    assert.equal(
      await ok("network", "delete", "lan"),
      `network lan (${lan.id}) deleted\n`,
    );
    assert.doesNotMatch(await ok("network", "list"), /lan|dmz/);
  } catch (err) {
    await c.printLogs();
    throw err;
  } finally {
    await server.shutdown();
    await c.stop();
  }
});

Deno.test("ucloud vm create on a full cloud prints why it stays pending, while waiting and in the error", async () => {
  const c = await startCluster({ guest: false });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createApp({ store: c.store }).fetch,
  );
  const api = `http://127.0.0.1:${server.addr.port}`;
  try {
    await c.addWorker({ name: "h1", cpus: 4 });
    const began = performance.now();
    const r = await ucloud(
      api,
      ...["vm", "create", "--name", "big", "--cpus", "8", "--memory", "128"],
      ...["--timeout", "5"],
    );
    assert.equal(r.code, 1, r.stderr);
    assert.ok(performance.now() - began < 60_000, "waited the full 120 s");
    const lines = r.stderr.trim().split("\n");
    const reason = /no live host has 8 free CPU\(s\)/;
    // The progress line tells it as soon as placement has said so ...
    assert.ok(
      lines.slice(0, -1).some((l) => /pending/.test(l) && reason.test(l)),
      r.stderr,
    );
    // ... and so does the error.
    assert.match(lines.at(-1)!, /Cannot wait longer than 5s/);
    assert.match(lines.at(-1)!, reason);
    await ucloud(api, "vm", "delete", "big", "--timeout", "60");
  } catch (err) {
    await c.printLogs();
    throw err;
  } finally {
    await server.shutdown();
    await c.stop();
  }
});

Deno.test("ucloud CLI plans a rebalance without enqueuing and shuts a host down in order (sim driver)", async () => {
  const c = await startCluster({ guest: false });
  // The workers' own rounds move nothing (UCLOUD_REBALANCE_MAX_MOVES=0);
  // the API's rounds may.
  const scheduler = { ...c.config.scheduler, rebalanceMaxMoves: 2 };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    createApp({ store: c.store, config: { ...c.config, scheduler } }).fetch,
  );
  const api = `http://127.0.0.1:${server.addr.port}`;
  const sim = { UCLOUD_DRIVER: "sim" };
  try {
    const w1 = await c.addWorker({ name: "h1", env: sim });
    const vm = (name: string, ...more: string[]) =>
      ucloud(
        api,
        "vm",
        "create",
        "--name",
        name,
        "--cpus",
        "2",
        "--memory",
        "512",
        ...more,
      );
    for (const r of [await vm("mov", "--movable"), await vm("fix")]) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /is running on h1/);
    }
    const shown = await ucloud(api, "vm", "show", "mov");
    assert.match(shown.stdout, /^movable: +yes/m);
    await c.addWorker({ name: "h2", env: sim });
    await waitFor("h2 alive", () => c.store.get("alive/h2", z.unknown()));

    // The plan names the movable VM only.
    const plan = await ucloud(api, "host", "rebalance", "--dry-run");
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(
      plan.stdout,
      /^would move running vm vm-\S+ from h1 to h2: h1 \d+%, h2 0% loaded/m,
    );
    assert.match(plan.stdout, /1 move\(s\) planned, nothing enqueued: /);
    const queued = await c.store.list("queue/", z.unknown());
    assert.deepEqual(queued.items, []);

    const down = await ucloud(api, "host", "shutdown", "h1");
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /^host h1 is shut down/);
    assert.equal((await w1.child!.status).code, 0);
    w1.child = undefined;
    const list = await ucloud(api, "host", "list");
    assert.match(list.stdout, /^h1\s+shutdown\s+no\s+0\/4/m);
    // Placed on h2 when h1 exits; h2 starts them.
    await waitFor("both VMs running on h2", async () => {
      const vms = (await ucloud(api, "vm", "list")).stdout;
      return /mov\s+2\s+512Mi\s+running\s+h2/.test(vms) &&
        /fix\s+2\s+512Mi\s+running\s+h2/.test(vms);
    });
  } finally {
    await server.shutdown();
    await c.stop();
  }
});
