/** main() of vm attach and vm detach, and vm create --network. */
import assert from "node:assert/strict";
import { create, run, withApi } from "./_test_api.ts";

Deno.test("main() vm create --network sends network ids in order, names resolved", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    api.addNetwork("net-2", "dmz");
    const result = await run(
      [
        ...create,
        "--memory",
        "128",
        "--network",
        "dmz",
        "--network",
        "net-1",
        "--no-wait",
      ],
      api,
    );
    assert.equal(result.code, 0, result.stderr);
    const post = api.requests.find((r) => r.method === "POST")!;
    assert.deepEqual(post.body, {
      name: "web1",
      cpus: 1,
      memory: 128,
      networks: ["net-2", "net-1"],
    });
    const unknown = await run(
      [...create, "--memory", "128", "--network", "wan", "--no-wait"],
      api,
    );
    assert.equal(unknown.code, 1);
    assert.equal(
      unknown.stderr,
      "error: Cannot find network wan: no network has this id or name\n",
    );
    assert.equal(
      api.requests.filter((r) => r.method === "POST").length,
      1,
    );
  }));

Deno.test("main() vm attach to a stopped VM: the NIC is there at once", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    api.addVm("vm-1", "web1", { phase: "stopped", host: undefined });
    const result = await run(["vm", "attach", "web1", "--network", "lan"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "vm web1 (vm-1) has NIC 0 in network lan (net-1): MAC 52:54:00:00:00:10, " +
        "IPv6 fdc1:d00:0:1::5054:ff:fe00:10; the VM gets it when it starts\n",
    );
    assert.equal(result.stderr, "");
    const post = api.requests.at(-1)!;
    assert.equal(
      `${post.method} ${post.url.pathname}`,
      "POST /v1/vms/vm-1/nics",
    );
    assert.deepEqual(post.body, { network: "net-1" });
  }));

Deno.test("main() vm attach to a running VM waits until the task plugged the NIC in", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    api.addVm("vm-1", "web1");
    api.taskSteps.set("t-1", [
      { state: "running", attempts: 1, progress: "plugging NIC 0 (net-1)" },
      {
        state: "succeeded",
        result: { plugged: [0], unplugged: [], dropped: [] },
      },
    ]);
    const result = await run(
      ["vm", "attach", "vm-1", "--network", "net-1"],
      api,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^vm web1 \(vm-1\) has NIC 0 in network lan \(net-1\): MAC 52:54:00:00:00:10, IPv6 fdc1:d00:0:1::5054:ff:fe00:10; plugged in \(\d+\.\ds\)\n$/,
    );
    const lines = result.stderr.trimEnd().split("\n").map((l) =>
      l.replace(/^\[\d+\.\ds\] /, "")
    );
    assert.deepEqual(lines, [
      "vm web1 (vm-1): running on h1 | task t-1 vm.nics queued (attempt 0/3)",
      "vm web1 (vm-1): running on h1 | task t-1 vm.nics running (attempt 1/3): plugging NIC 0 (net-1)",
      "vm web1 (vm-1): running on h1 | task t-1 vm.nics succeeded (attempt 1/3): plugging NIC 0 (net-1)",
    ]);

    api.addNetwork("net-2", "dmz");
    const noWait = await run(
      ["vm", "attach", "web1", "--network", "dmz", "--no-wait"],
      api,
    );
    assert.equal(
      noWait.stdout,
      "vm web1 (vm-1) has NIC 1 in network dmz (net-2): MAC 52:54:00:00:00:11, " +
        "IPv6 fdc1:d00:0:2::5054:ff:fe00:11; plugging it in as task t-2 " +
        "(queued): follow it with 'ucloud task show t-2'\n",
    );
    api.addNetwork("net-3", "wan");
    const json = await run(
      ["vm", "attach", "web1", "--network", "wan", "--no-wait", "--json"],
      api,
    );
    assert.equal(JSON.parse(json.stdout).task.kind, "vm.nics");
  }));

Deno.test("main() vm attach follows a task forwarded to the VM's new host", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    api.addVm("vm-1", "web1");
    const forwarded = api.addTask("vm.nics", "vm-1", { target: "h2" });
    api.taskSteps.set("t-2", [{}, {
      state: "succeeded",
      result: { forwarded: forwarded.id, host: "h2" },
    }]);
    api.taskSteps.set(forwarded.id, [{}, { state: "running" }, {
      state: "succeeded",
      result: { plugged: [0] },
    }]);
    const result = await run(["vm", "attach", "web1", "--network", "lan"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /; plugged in \(/);
    assert.match(result.stderr, /task t-1 vm\.nics succeeded/);
  }));

Deno.test("main() vm attach fails with the task's error", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    api.addVm("vm-1", "web1");
    api.taskSteps.set("t-1", [{
      state: "failed",
      error: "Cannot change NICs of VM vm-1: host h1 runs without networking",
    }]);
    const result = await run(["vm", "attach", "web1", "--network", "lan"], api);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /\nerror: task t-1 \(vm\.nics\) failed: Cannot change NICs of VM vm-1: host h1 runs without networking\n$/,
    );
  }));

Deno.test("main() vm detach of a stopped VM's NIC removes it at once", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    api.addNetwork("net-2", "dmz");
    const vm = api.addVm("vm-1", "web1", { phase: "stopped", host: undefined });
    api.addNic(vm, "net-1");
    api.addNic(vm, "net-2");
    const bySlot = await run(["vm", "detach", "web1", "--slot", "1"], api);
    assert.equal(bySlot.code, 0, bySlot.stderr);
    assert.equal(
      bySlot.stdout,
      "vm web1 (vm-1): NIC 1 in network dmz (net-2) is removed\n",
    );
    const del = api.requests.at(-1)!;
    assert.equal(
      `${del.method} ${del.url.pathname}`,
      "DELETE /v1/vms/vm-1/nics/1",
    );
    const byNetwork = await run(
      ["vm", "detach", "web1", "--network", "lan", "--json"],
      api,
    );
    assert.equal(byNetwork.code, 0, byNetwork.stderr);
    const answer = JSON.parse(byNetwork.stdout);
    assert.deepEqual(answer.vm.nics, []);
    assert.equal(answer.task, null);
    assert.equal(api.requests.at(-1)!.url.pathname, "/v1/vms/vm-1/nics/0");
  }));

Deno.test("main() vm detach refuses a NIC the VM does not have", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    api.addNetwork("net-2", "dmz");
    api.addNic(api.addVm("vm-1", "web1"), "net-1");
    const slot = await run(["vm", "detach", "web1", "--slot", "3"], api);
    assert.equal(slot.code, 1);
    assert.equal(
      slot.stderr,
      "error: Cannot detach NIC 3 from vm web1 (vm-1): the VM has no NIC in " +
        "slot 3 (its NICs: 0)\n",
    );
    const network = await run(
      ["vm", "detach", "web1", "--network", "dmz"],
      api,
    );
    assert.equal(network.code, 1);
    assert.equal(
      network.stderr,
      "error: Cannot detach network dmz (net-2) from vm web1 (vm-1): the VM " +
        "has no NIC in it\n",
    );
    assert.ok(!api.requests.some((r) => r.method === "DELETE"));
  }));

Deno.test("main() vm detach of a running VM waits until the NIC is unplugged and gone", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    const vm = api.addVm("vm-1", "web1");
    const nic = api.addNic(vm, "net-1");
    api.nicSteps.set("vm-1", [undefined, undefined, []]);
    api.taskSteps.set("t-1", [{ state: "running", attempts: 1 }, {
      state: "succeeded",
      result: { plugged: [], unplugged: [0], dropped: [0] },
    }]);
    const result = await run(["vm", "detach", "web1", "--slot", "0"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^vm web1 \(vm-1\): NIC 0 in network lan \(net-1\) is unplugged and removed \(\d+\.\ds\)\n$/,
    );
    assert.match(result.stderr, /task t-1 vm\.nics running/);

    vm.nics = [{ ...nic, state: "attached" }];
    const noWait = await run(
      ["vm", "detach", "web1", "--network", "lan", "--no-wait"],
      api,
    );
    assert.equal(
      noWait.stdout,
      "vm web1 (vm-1): NIC 0 in network lan (net-1) is detaching as task t-2 " +
        "(queued); follow it with 'ucloud task show t-2'\n",
    );
    const late = await run(
      ["vm", "detach", "web1", "--slot", "0", "--timeout", "0.1"],
      api,
    );
    assert.equal(late.code, 1);
    assert.match(
      late.stderr,
      /error: Cannot wait longer than 0.1s for NIC 0 of vm web1 \(vm-1\) to be removed: task t-3 is queued\. The change goes on in the background: see 'ucloud vm show vm-1'/,
    );
  }));
