/** main() of vm stop and vm reboot: force, the guest's time, how it went. */
import assert from "node:assert/strict";
import { run, withApi } from "./_test_api.ts";

Deno.test("main() vm stop by name waits until the VM is stopped", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1");
    api.vmSteps.set("vm-1", [{ phase: "stopping" }, { phase: "stopped" }]);
    const result = await run(["vm", "stop", "web1"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^vm web1 \(vm-1\) is stopped \(/);
    assert.ok(
      api.requests.some((r) =>
        r.method === "POST" && r.url.pathname === "/v1/vms/vm-1/stop"
      ),
    );
  }));

Deno.test("main() vm stop --force sends force and says it stopped hard", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1");
    api.vmSteps.set("vm-1", [{ phase: "stopping" }, { phase: "stopped" }]);
    api.taskSteps.set("t-1", [{
      state: "succeeded",
      result: { stopped: true, how: "forced", ms: 120 },
    }]);
    const result = await run(["vm", "stop", "web1", "--force"], api);
    assert.equal(result.code, 0, result.stderr);
    const post = api.requests.find((r) => r.method === "POST")!;
    assert.equal(post.url.pathname, "/v1/vms/vm-1/stop");
    assert.deepEqual(post.body, { force: true });
    assert.match(
      result.stdout,
      /^vm web1 \(vm-1\) is stopped \([0-9.]+s\): stopped hard \(--force\)\n$/,
    );
  }));

Deno.test("main() vm stop --timeout says how the guest shut down", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1");
    api.vmSteps.set("vm-1", [{ phase: "stopped" }]);
    api.taskSteps.set("t-1", [{
      state: "succeeded",
      result: { stopped: true, how: "shutdown", ms: 2400 },
    }]);
    const result = await run(["vm", "stop", "web1", "--timeout", "30"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(api.requests.find((r) => r.method === "POST")!.body, {
      timeoutSeconds: 30,
    });
    assert.match(result.stdout, /: the guest shut down in 2\.4s\n$/);
  }));

Deno.test("main() vm reboot waits for its task and says how it went", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1");
    api.taskSteps.set("t-1", [{ state: "running", attempts: 1 }, {
      state: "succeeded",
      result: { rebooted: true, how: "reboot", ms: 800 },
    }]);
    const result = await run(["vm", "reboot", "web1"], api);
    assert.equal(result.code, 0, result.stderr);
    const post = api.requests.find((r) => r.method === "POST")!;
    assert.equal(post.url.pathname, "/v1/vms/vm-1/reboot");
    assert.deepEqual(post.body, {});
    assert.match(
      result.stdout,
      /^vm web1 \(vm-1\) rebooted \([0-9.]+s\): the guest rebooted\n$/,
    );
    assert.match(result.stderr, /task t-1 vm\.reboot running/);

    api.taskSteps.set("t-2", [{
      state: "succeeded",
      result: { rebooted: true, how: "forced", ms: 10 },
    }]);
    const forced = await run(["vm", "reboot", "web1", "--force"], api);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(api.requests.filter((r) => r.method === "POST")[1].body, {
      force: true,
    });
    assert.match(forced.stdout, /rebooted \([0-9.]+s\): reset \(--force\)\n$/);
  }));
