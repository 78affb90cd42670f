/** main() of vm create, show, start and delete against the fake API: waiting, progress, failures. */
import assert from "node:assert/strict";
import { create, run, withApi } from "./_test_api.ts";

Deno.test("main() vm create waits: the task runs, then the VM runs", () =>
  withApi(async (api) => {
    api.vmSteps.set("vm-1", [
      {},
      { phase: "scheduled", host: "h1" },
      { phase: "starting" },
      {},
      { phase: "running" },
    ]);
    api.taskSteps.set("t-1", [
      {},
      { state: "running", attempts: 1, worker: "h1" },
      { progress: "booting" },
      { progress: "booting" },
      { state: "succeeded" },
    ]);
    const result = await run(
      [...create, "--memory", "128", "--idempotency-key", "k-42"],
      api,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^vm web1 \(vm-1\) is running on h1 \(\d+\.\d+s\)\n$/,
    );
    const lines = result.stderr.trimEnd().split("\n").map((l) =>
      l.replace(/^\[\d+\.\ds\] /, "")
    );
    assert.deepEqual(lines, [
      "vm web1 (vm-1): pending | task t-1 vm.create queued (attempt 0/3)",
      "vm web1 (vm-1): scheduled on h1 | task t-1 vm.create running (attempt 1/3)",
      "vm web1 (vm-1): starting on h1 | task t-1 vm.create running (attempt 1/3): booting",
      "vm web1 (vm-1): running on h1 | task t-1 vm.create succeeded (attempt 1/3): booting",
    ]);
    const post = api.requests[0];
    assert.equal(post.method, "POST");
    assert.equal(post.url.pathname, "/v1/vms");
    assert.deepEqual(post.body, { name: "web1", cpus: 1, memory: 128 });
    assert.equal(post.headers.get("idempotency-key"), "k-42");
    assert.equal(post.headers.get("content-type"), "application/json");
  }));

Deno.test("main() vm create --no-wait returns once the API accepted it", () =>
  withApi(async (api) => {
    const result = await run([...create, "--memory", "128", "--no-wait"], api);
    assert.equal(result.code, 0);
    assert.equal(
      result.stdout,
      "vm web1 (vm-1): create accepted as task t-1 (queued); follow it with 'ucloud task show t-1'\n",
    );
    assert.equal(result.stderr, "");
    assert.deepEqual(api.requests.map((r) => `${r.method} ${r.url.pathname}`), [
      "POST /v1/vms",
    ]);
  }));

Deno.test("main() vm create --disk sends the size in GiB", () =>
  withApi(async (api) => {
    const result = await run(
      [...create, "--memory", "128", "--disk", "20", "--no-wait"],
      api,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(api.requests[0].body, {
      name: "web1",
      cpus: 1,
      memory: 128,
      disk: 20,
    });
  }));

Deno.test("main() vm create --json prints the final VM and task", () =>
  withApi(async (api) => {
    api.vmSteps.set("vm-1", [{ phase: "running", host: "h2" }]);
    api.taskSteps.set("t-1", [{ state: "succeeded", attempts: 1 }]);
    const result = await run([...create, "--memory", "128", "--json"], api);
    assert.equal(result.code, 0);
    const out = JSON.parse(result.stdout);
    assert.equal(out.vm.status.phase, "running");
    assert.equal(out.vm.status.host, "h2");
    assert.equal(out.task.state, "succeeded");
  }));

Deno.test("main() vm show accepts a name and refuses an ambiguous one", () =>
  withApi(async (api) => {
    api.addVm("vm-a", "web1", { handle: { pid: 42 } });
    const byName = await run(["vm", "show", "web1"], api);
    assert.equal(byName.code, 0, byName.stderr);
    assert.match(byName.stdout, /^id: +vm-a$/m);
    assert.match(byName.stdout, /^name: +web1$/m);
    assert.match(byName.stdout, /^memory: +128 MiB$/m);
    assert.match(byName.stdout, /^host: +h1$/m);
    assert.match(byName.stdout, /^handle: +\{"pid":42\}$/m);
    const json = await run(["vm", "show", "vm-a", "--json"], api);
    assert.equal(JSON.parse(json.stdout).id, "vm-a");

    api.addVm("vm-b", "web1");
    const ambiguous = await run(["vm", "stop", "web1"], api);
    assert.equal(ambiguous.code, 1);
    assert.equal(
      ambiguous.stderr,
      "error: Cannot pick vm web1: 2 VMs have this name (vm-a, vm-b); use an id\n",
    );
  }));

Deno.test("main() vm delete waits until the VM answers 404", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1");
    api.vmSteps.set("vm-1", [{}, { phase: "deleting" }, "gone"]);
    const result = await run(["vm", "delete", "vm-1"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^vm web1 \(vm-1\) is deleted \(/);
    assert.match(
      result.stderr,
      /vm web1 \(vm-1\): deleted on h1 \| task t-1 vm.delete queued/,
    );
  }));

Deno.test("main() fails with the task's error when the task fails", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1", { phase: "stopped", host: undefined });
    api.taskSteps.set("t-1", [{ state: "running", attempts: 1 }, {
      state: "failed",
      error: "no host has 1 CPU free",
    }]);
    const result = await run(["vm", "start", "web1"], api);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /\nerror: task t-1 \(vm\.start\) failed: no host has 1 CPU free\n$/,
    );
  }));

Deno.test("main() fails when the VM crashes while starting", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1", { phase: "stopped" });
    api.vmSteps.set("vm-1", [{ phase: "starting" }, {
      phase: "crashed",
      reason: "qemu exited with 1",
    }]);
    const result = await run(["vm", "start", "vm-1"], api);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /\nerror: vm web1 \(vm-1\) crashed: qemu exited with 1\n$/,
    );
  }));

Deno.test("main() vm start of a crashed VM ignores the crash from before", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1", {
      phase: "crashed",
      updatedAt: "2020-01-01T00:00:00.000Z",
    });
    api.vmSteps.set("vm-1", [{ phase: "starting" }, { phase: "running" }]);
    const result = await run(["vm", "start", "web1"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /is running on h1/);
  }));

Deno.test("main() gives up after --timeout and says the operation goes on", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1", { phase: "stopped" });
    const started = Date.now();
    const result = await run(["vm", "start", "web1", "--timeout", "0.2"], api);
    assert.equal(result.code, 1);
    assert.ok(Date.now() - started < 2000);
    assert.match(
      result.stderr,
      /error: Cannot wait longer than 0.2s for vm web1 \(vm-1\) to be running: phase is stopped, task t-1 queued\. The operation goes on in the background: see 'ucloud vm show vm-1'/,
    );
  }));

Deno.test("main() rewrites the progress line when stderr is a terminal", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1", { phase: "stopped" });
    api.vmSteps.set("vm-1", [{ phase: "starting" }, { phase: "running" }]);
    const result = await run(["vm", "start", "web1"], api, { tty: true });
    assert.equal(result.code, 0);
    assert.equal(result.stderr.split("\r\x1b[K").length, 4);
    assert.ok(result.stderr.endsWith("\n"));
    assert.equal(result.stderr.split("\n").length, 2);
  }));

Deno.test("main() vm show lists the NICs with network names", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    api.addNetwork("net-2", "dmz");
    const vm = api.addVm("vm-1", "web1");
    api.addNic(vm, "net-1");
    api.addNic(vm, "net-2").ipv4 = "10.0.0.2";
    vm.nics![1].state = "detaching";
    // A network the caller cannot see any more: only its id.
    vm.nics!.push({ ...vm.nics![0], slot: 2, network: "net-9" });
    const result = await run(["vm", "show", "web1"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(
      result.stdout.endsWith(
        "\nnics:\n" +
          "  SLOT  NETWORK      MAC                IPV6                           IPV4      STATE\n" +
          "     0  lan (net-1)  52:54:00:00:00:10  fdc1:d00:0:1::5054:ff:fe00:10  -         attached\n" +
          "     1  dmz (net-2)  52:54:00:00:00:11  fdc1:d00:0:2::5054:ff:fe00:11  10.0.0.2  detaching\n" +
          "     2  net-9        52:54:00:00:00:10  fdc1:d00:0:1::5054:ff:fe00:10  -         attached\n",
      ),
      result.stdout,
    );
    const bare = api.addVm("vm-2", "web2");
    bare.nics = [];
    const none = await run(["vm", "show", "web2"], api);
    assert.match(none.stdout, /^nics: +none$/m);
    assert.equal(
      api.requests.filter((r) => r.url.pathname === "/v1/networks").length,
      1,
    );
  }));

Deno.test("main() vm show tells how often the VM crashed lately and why", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1", {
      crashes: [
        { at: "2026-12-01T10:00:00Z", reason: "qemu (pid 7) exited: killed" },
        { at: "2026-12-01T10:00:05Z", reason: "qemu (pid 9) exited: oom" },
      ],
    });
    const result = await run(["vm", "show", "web1"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^crashes: +2 recently, last .*: qemu \(pid 9\) exited: oom$/m,
    );
  }));

Deno.test("main() vm show says when the VM may be moved while running", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1").spec.movable = true;
    api.addVm("vm-2", "web2");
    const shown = await run(["vm", "show", "web1"], api);
    assert.match(
      shown.stdout,
      /^movable: +yes: the rebalancer may move it running$/m,
    );
    const fixed = await run(["vm", "show", "web2"], api);
    assert.doesNotMatch(fixed.stdout, /movable/);
  }));
