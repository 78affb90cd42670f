/** main() of the host commands: list, drain, enable, shutdown, rebalance. */
import assert from "node:assert/strict";
import { addHost, run, withApi } from "./_test_api.ts";

Deno.test("main() host drain waits until no VM is left, printing progress", () =>
  withApi(async (api) => {
    addHost(api, "h1", ["vm-a", "vm-b"]);
    addHost(api, "h2", []);
    api.hostSteps.set("h1", [{}, { vms: ["vm-b"] }, {}, { vms: [] }]);
    api.taskSteps.set("t-1", [{}, { state: "running" }, {
      state: "succeeded",
    }]);
    const result = await run(["host", "drain", "h1"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^host h1 is drained \(\d+\.\ds\)\n$/);
    const lines = result.stderr.trimEnd().split("\n").map((l) =>
      l.replace(/^\[\d+\.\ds\] /, "")
    );
    assert.deepEqual(lines, [
      "host h1: draining, 2 VM(s) left: vm-a, vm-b | task t-1 host.drain queued",
      "host h1: draining, 1 VM(s) left: vm-b | task t-1 host.drain running",
      "host h1: draining, 1 VM(s) left: vm-b | task t-1 host.drain succeeded",
      "host h1: draining, no VM left | task t-1 host.drain succeeded",
    ]);
    assert.equal(api.requests[0].method, "POST");
    assert.equal(api.requests[0].url.pathname, "/v1/hosts/h1/drain");
  }));

Deno.test("main() host drain --no-wait, and of a host already draining", () =>
  withApi(async (api) => {
    addHost(api, "h1", ["vm-a"]);
    const first = await run(["host", "drain", "h1", "--no-wait"], api);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(
      first.stdout,
      "host h1: draining; task t-1 moves its 1 VM(s): follow it with 'ucloud host list'\n",
    );
    const again = await run(["host", "drain", "h1", "--no-wait"], api);
    assert.equal(again.stdout, "host h1: already draining, 1 VM(s) left\n");
    assert.equal(api.requests.length, 2);
  }));

Deno.test("main() host drain fails when the drain task fails or the host is enabled", () =>
  withApi(async (api) => {
    addHost(api, "h1", ["vm-a"]);
    api.taskSteps.set("t-1", [{ state: "failed", error: "etcd went away" }]);
    const failed = await run(["host", "drain", "h1"], api);
    assert.equal(failed.code, 1);
    assert.match(
      failed.stderr,
      /\nerror: task t-1 \(host\.drain\) failed: etcd went away\n$/,
    );
    addHost(api, "h2", ["vm-b"]);
    api.hostSteps.set("h2", [{ state: "active" }]);
    const undone = await run(["host", "drain", "h2"], api);
    assert.equal(undone.code, 1);
    assert.match(
      undone.stderr,
      /\nerror: host h2 is active again: the drain was undone\n$/,
    );
    const missing = await run(["host", "drain", "h9"], api);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, "error: Cannot find host h9\n");
  }));

Deno.test("main() host drain gives up after --timeout", () =>
  withApi(async (api) => {
    addHost(api, "h1", ["vm-a"]);
    const result = await run(
      ["host", "drain", "h1", "--timeout", "0.1"],
      api,
    );
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /error: Cannot wait longer than 0.1s for host h1 to be drained: 1 VM\(s\) left\. The drain goes on in the background/,
    );
  }));

Deno.test("main() host enable says what changed", () =>
  withApi(async (api) => {
    addHost(api, "h1", []).state = "draining";
    const first = await run(["host", "enable", "h1"], api);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(
      first.stdout,
      "host h1 is active: new VMs may be placed on it\n",
    );
    const again = await run(["host", "enable", "h1"], api);
    assert.equal(again.stdout, "host h1 was already active\n");
    const json = await run(["host", "enable", "h1", "--json"], api);
    assert.equal(JSON.parse(json.stdout).host.state, "active");
  }));

Deno.test("main() host rebalance lists drains and moves, or why it did not run", () =>
  withApi(async (api) => {
    api.rebalance = {
      ran: true,
      by: "api:local",
      at: new Date().toISOString(),
      reason: "at most 1 move(s) per round: h1 63%, h2 0%",
      drains: [{ host: "h3", task: "t-7" }],
      moves: [{
        vm: "vm-a",
        from: "h1",
        to: "h2",
        why: "h1 63%, h2 0% loaded, gap above 25%",
        phase: "stopped",
        task: "t-8",
      }],
    };
    const result = await run(["host", "rebalance"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "drain of host h3 resumed as task t-7\n" +
        "moving vm vm-a off h1 (towards h2) as task t-8\n" +
        "1 move(s): at most 1 move(s) per round: h1 63%, h2 0%\n",
    );
    assert.equal(api.requests[0].method, "POST");
    assert.equal(api.requests[0].url.pathname, "/v1/maintenance/rebalance");
    api.rebalance = {
      ...api.rebalance,
      ran: false,
      reason: "another rebalance round is running (h2 since 12:00)",
      drains: [],
      moves: [],
    };
    const skipped = await run(["host", "rebalance"], api);
    assert.equal(
      skipped.stdout,
      "rebalance did not run: another rebalance round is running (h2 since 12:00)\n",
    );
  }));

Deno.test("main() host list shows a host whose worker hands over as handover", () =>
  withApi(async (api) => {
    addHost(api, "h1", []).handover = new Date(Date.now() + 60_000)
      .toISOString();
    addHost(api, "h2", []);
    const result = await run(["host", "list"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^h1\s+handover\s+yes/m);
    assert.match(result.stdout, /^h2\s+active\s+yes/m);
  }));

Deno.test("main() host rebalance --dry-run prints the plan and enqueues nothing", () =>
  withApi(async (api) => {
    api.override = (method, url) =>
      method === "GET" && url.pathname === "/v1/maintenance/rebalance"
        ? Response.json({
          by: "api:local",
          at: new Date().toISOString(),
          reason: "no VM on h1 fits on h2 and narrows the gap (3 running " +
            "VM(s) stay: scheduler.rebalanceRunning is off and they are " +
            "not movable): h1 50%, h2 6%",
          drains: [{ host: "h3" }],
          moves: [{
            vm: "vm-a",
            from: "h1",
            to: "h2",
            why: "h1 63%, h2 0% loaded, gap above 25%",
            phase: "stopped",
          }],
        })
        : undefined;
    const result = await run(["host", "rebalance", "--dry-run"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "would resume the drain of host h3\n" +
        "would move stopped vm vm-a from h1 to h2: h1 63%, h2 0% loaded, " +
        "gap above 25%\n" +
        "1 move(s) planned, nothing enqueued: no VM on h1 fits on h2 and " +
        "narrows the gap (3 running VM(s) stay: scheduler.rebalanceRunning " +
        "is off and they are not movable): h1 50%, h2 6%\n",
    );
    assert.deepEqual(
      api.requests.map((r) => `${r.method} ${r.url.pathname}`),
      ["GET /v1/maintenance/rebalance"],
    );
  }));

Deno.test("main() host shutdown waits for the drain and the worker's exit", () =>
  withApi(async (api) => {
    const h1 = addHost(api, "h1", ["vm-a"]);
    const shutdown = { at: new Date().toISOString(), by: "local" };
    api.override = (method, url) => {
      if (method !== "POST" || url.pathname !== "/v1/hosts/h1/shutdown") {
        return undefined;
      }
      Object.assign(h1, { state: "draining", shutdown });
      return Response.json({
        host: h1,
        task: { ...api.addTask("host.drain", ""), payload: { host: "h1" } },
      }, { status: 202 });
    };
    api.hostSteps.set("h1", [{ vms: [] }, {}, {
      alive: false,
      shutdown: { ...shutdown, done: new Date().toISOString() },
    }]);
    const result = await run(["host", "shutdown", "h1"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^host h1 is shut down \(\d+\.\ds\): drained, worker stopped\. After the maintenance, start its worker and run 'ucloud host enable h1'\n$/,
    );
    const list = await run(["host", "list"], api);
    assert.match(list.stdout, /^h1\s+shutdown\s+no/m);
    h1.shutdown = shutdown;
    h1.alive = true;
    const during = await run(["host", "list"], api);
    assert.match(during.stdout, /^h1\s+shutting-down\s+yes/m);
    const noWait = await run(["host", "shutdown", "h1", "--no-wait"], api);
    assert.equal(
      noWait.stdout,
      "host h1: shutting down; its worker exits once its 0 VM(s) are " +
        "elsewhere: follow it with 'ucloud host list'\n",
    );
  }));

Deno.test("main() host drain ends with what the drain did to each VM: stop, new host, downtime", () =>
  withApi(async (api) => {
    addHost(api, "h1", ["vm-a", "vm-b"]);
    addHost(api, "h2", []);
    api.hostSteps.set("h1", [{}, { vms: [] }]);
    api.taskSteps.set("t-1", [{}, { state: "succeeded" }]);
    const a = { vm: "vm-a", move: "t-2", done: true };
    api.drainReports.set("t-1", [
      { host: "h1", done: false, vms: [{ ...a, done: false }] },
      {
        host: "h1",
        done: true,
        vms: [
          { ...a, stop: "shutdown", stopMs: 900, to: "h2", downtimeMs: 4100 },
          {
            vm: "vm-b",
            move: "t-3",
            done: true,
            stop: "forced",
            stopMs: 60000,
            to: "h2",
            downtimeMs: 61000,
          },
        ],
      },
    ]);
    const result = await run(["host", "drain", "h1"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      new RegExp(
        "^host h1 is drained \\(\\d+\\.\\ds\\)\n" +
          "moved 2 VM\\(s\\):\n" +
          "  vm-a: the guest shut down in 0\\.9s, on h2, down 4\\.1s\n" +
          "  vm-b: stopped hard after 60\\.0s, on h2, down 61\\.0s\n$",
      ),
    );
    const json = await run(["host", "drain", "h1", "--json"], api);
    assert.equal(json.code, 0, json.stderr);
  }));

Deno.test("main() host list prints each etcd member's size and revision, a raised alarm and one not answering", () =>
  withApi(async (api) => {
    addHost(api, "h1", []);
    const member = {
      endpoints: ["http://e1:2379"],
      version: "3.4.23",
      dbSize: 25 * 1024 ** 2,
      dbSizeInUse: 3 * 1024 ** 2,
      revision: "5012",
      leader: true,
      alarms: ["NOSPACE"],
    };
    api.override = (method, url) =>
      method === "GET" && url.pathname === "/v1/maintenance/etcd"
        ? Response.json({
          members: [{ ...member, name: "e1" }, {
            ...member,
            name: "e2",
            leader: false,
            alarms: [],
            error: "connect ECONNREFUSED",
          }],
        })
        : undefined;
    const result = await run(["host", "list"], api);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdout.trimEnd().split("\n").slice(-2), [
      "etcd e1: revision 5012, db 25.0 MiB (3.0 MiB in use), leader, ALARM NOSPACE",
      "etcd e2: not answering: connect ECONNREFUSED",
    ]);
  }));
