/** main() as a whole: API errors, listings, task show, --api, help, an unreachable API. */
import assert from "node:assert/strict";
import type { Vm } from "./client.ts";
import { main } from "./main.ts";
import { Captured, closedPort, create, run, withApi } from "./_test_api.ts";

Deno.test("main() shows the API's error with its field and exits 1", () =>
  withApi(async (api) => {
    api.override = (method) =>
      method === "POST"
        ? Response.json(
          {
            error: {
              status: 400,
              code: "invalid",
              message: "image not found",
              field: "image",
            },
          },
          { status: 400 },
        )
        : undefined;
    const result = await run(
      [...create, "--memory", "128", "--image", "nope"],
      api,
    );
    assert.equal(result.code, 1);
    assert.equal(result.stderr, "error: image not found (field: image)\n");
    assert.equal(result.stdout, "");
  }));

Deno.test("main() shows a non-JSON error answer with its status", () =>
  withApi(async (api) => {
    api.override = () =>
      new Response("upstream down", { status: 502, statusText: "Bad Gateway" });
    const result = await run(["host", "list"], api);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      "error: the API answered 502 Bad Gateway: upstream down\n",
    );
  }));

Deno.test("main() validates sizes locally: exit 2 and no request", () =>
  withApi(async (api) => {
    const result = await run([...create, "--memory", "64"], api);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'error: --memory must be a whole number of MiB from 96 to 1048576, got "64"\n' +
        "Run 'ucloud vm create --help' for usage.\n",
    );
    assert.equal(api.requests.length, 0);
  }));

Deno.test("main() reports a VM or task that does not exist: exit 1", () =>
  withApi(async (api) => {
    const vm = await run(["vm", "show", "nope"], api);
    assert.equal(vm.code, 1);
    assert.equal(
      vm.stderr,
      "error: Cannot find vm nope: no VM has this id or name\n",
    );
    const task = await run(["task", "show", "t-9"], api);
    assert.equal(task.code, 1);
    assert.equal(task.stderr, "error: Cannot find task t-9\n");
  }));

Deno.test("main() lists VMs, hosts and tasks as aligned tables", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1");
    api.addVm("vm-2", "database", { phase: "pending", host: undefined });
    api.vms.get("vm-2")!.spec.memory = 2048;
    api.hosts = [{
      name: "h1",
      capacity: { cpus: 8, memoryMiB: 16384 },
      allocation: { cpuRatio: 4, memoryRatio: 1.5, reservedMemoryMiB: 512 },
      effective: { cpus: 32, memoryMiB: 23808 },
      usage: { cpus: 3, memoryMiB: 2176, vms: 2 },
      vms: ["vm-1", "vm-2"],
      state: "active",
      alive: true,
      lastHeartbeat: new Date(Date.now() - 1000).toISOString(),
      addresses: ["::1"],
      os: "linux",
      drivers: ["qemu"],
    }, {
      name: "h2",
      capacity: { cpus: 4, memoryMiB: 4096 },
      allocation: { cpuRatio: 1, memoryRatio: 1, reservedMemoryMiB: 0 },
      effective: { cpus: 4, memoryMiB: 4096 },
      usage: { cpus: 0, memoryMiB: 0, vms: 0 },
      vms: [],
      state: "draining",
      alive: false,
      addresses: [],
      os: "linux",
      drivers: ["qemu"],
    }];
    api.addTask("vm.create", "vm-1", { state: "running", attempts: 1 });
    api.addTask("vm.create", "vm-2");

    const vms = await run(["vm", "list"], api);
    assert.equal(
      vms.stdout,
      "ID    NAME      CPUS     MEM  PHASE    HOST\n" +
        "vm-1  web1         1   128Mi  running  h1\n" +
        "vm-2  database     1  2048Mi  pending  -\n",
    );
    const hosts = await run(["host", "list"], api);
    assert.equal(
      hosts.stdout,
      "NAME  STATE     ALIVE  CPUS    MEM(MiB)  RATIOS  RESERVED(MiB)  VMS  HEARTBEAT\n" +
        "h1    active    yes    3/32  2176/23808   4/1.5            512    2  1s ago\n" +
        "h2    draining  no      0/4      0/4096     1/1              0    0  -\n",
    );
    // A host tracking local disk adds DISK used/total in GiB.
    api.hosts[0].capacity.diskMiB = 100 * 1024 + 512;
    api.hosts[0].usage.diskMiB = 20 * 1024;
    const disk = await run(["host", "list"], api);
    assert.equal(
      disk.stdout,
      "NAME  STATE     ALIVE  CPUS    MEM(MiB)  RATIOS  RESERVED(MiB)  VMS  DISK(GiB)  HEARTBEAT\n" +
        "h1    active    yes    3/32  2176/23808   4/1.5            512    2     20/100  1s ago\n" +
        "h2    draining  no      0/4      0/4096     1/1              0    0          -  -\n",
    );
    const tasks = await run([
      "task",
      "list",
      "--vm",
      "web1",
      "--state",
      "running",
      "--limit",
      "5",
    ], api);
    assert.equal(tasks.code, 0, tasks.stderr);
    assert.match(
      tasks.stdout,
      /^ID +KIND +TARGET +STATE +ATTEMPTS +AGE +VM\nt-1 +vm\.create +any +running +1\/3 +\d+s +vm-1\n$/,
    );
    const query = api.requests.at(-1)!.url.searchParams;
    assert.equal(query.toString(), "state=running&vm=vm-1&limit=5");
    const json = await run(["vm", "list", "--json"], api);
    assert.deepEqual(JSON.parse(json.stdout).items.map((v: Vm) => v.id), [
      "vm-1",
      "vm-2",
    ]);
  }));

Deno.test("main() task show prints fields and the history", () =>
  withApi(async (api) => {
    api.addTask("vm.start", "vm-1", {
      state: "failed",
      attempts: 3,
      error: "qemu exited with 1",
      history: [
        { at: "2026-01-01T00:00:00.000Z", state: "queued" },
        {
          at: "2026-01-01T00:00:01.000Z",
          state: "failed",
          worker: "h1",
          message: "qemu exited with 1",
        },
      ],
    });
    const result = await run(["task", "show", "t-1"], api);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^attempts: +3\/3$/m);
    assert.match(result.stdout, /^error: +qemu exited with 1$/m);
    assert.match(
      result.stdout,
      /\nhistory:\n {2}AT +STATE +WORKER +MESSAGE\n {2}2026-01-01T00:00:00\.000Z +queued +-\n/,
    );
  }));

Deno.test("main() tells how to start the API when the connection is refused", async () => {
  const url = await closedPort();
  const result = await run(["vm", "list"], url);
  assert.equal(result.code, 1);
  assert.equal(
    result.stderr,
    `error: the ucloud API is not reachable at ${url} (connection refused). ` +
      "Start it with 'deno task up', or point --api or UCLOUD_API at a running API.\n",
  );
});

Deno.test("main() takes --api over UCLOUD_API", async () => {
  const closed = await closedPort();
  await withApi(async (api) => {
    const stdout = new Captured();
    const code = await main(["host", "list", "--api", `${api.url}/`], {
      stdout,
      stderr: new Captured(),
      env: { UCLOUD_API: closed },
    });
    assert.equal(code, 0);
    assert.equal(
      stdout.text,
      "NAME  STATE  ALIVE  CPUS  MEM(MiB)  RATIOS  RESERVED(MiB)  VMS  HEARTBEAT\n",
    );
  });
  const bad = await run(["vm", "list"], "not a url");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^error: UCLOUD_API must be an http\(s\) URL/);
});

Deno.test("main() prints help on stdout with exit 0, and on stderr with exit 2 when a command is missing", async () => {
  const help = await run(["vm", "--help"], "http://127.0.0.1:1");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: ucloud vm <command> \[flags\]\n/);
  assert.match(
    help.stdout,
    /^ {2}vm create +Create a VM and wait until it runs$/m,
  );
  assert.doesNotMatch(help.stdout, /host list/);
  const command = await run(["help", "vm", "create"], "http://127.0.0.1:1");
  assert.match(
    command.stdout,
    /^ {2}--memory MIB +memory in MiB, 96 to 1048576$/m,
  );
  const missing = await run([], "http://127.0.0.1:1");
  assert.equal(missing.code, 2);
  assert.equal(missing.stdout, "");
  assert.match(missing.stderr, /^error: missing command\n\nucloud: manage/);
});

Deno.test("main() help lists the network commands", async () => {
  const top = await run(["--help"], "http://127.0.0.1:1");
  assert.match(
    top.stdout,
    /^ucloud: manage the VMs, networks, images, hosts and tasks/,
  );
  assert.match(top.stdout, /^ {2}network create +Create a network/m);
  assert.match(top.stdout, /^ {2}vm attach +Give a VM a NIC/m);
  const create = await run(["help", "vm", "create"], "http://127.0.0.1:1");
  assert.match(
    create.stdout,
    /^ {2}--network ID\|NAME +a NIC in this network; repeat/m,
  );
  const detach = await run(["vm", "detach", "--help"], "http://127.0.0.1:1");
  assert.match(
    detach.stdout,
    /^Usage: ucloud vm detach ID\|NAME \(--slot N \| --network ID\|NAME\) \[flags\]$/m,
  );
});

Deno.test("main() --help lists every command in one aligned column, single commands included", async () => {
  const help = await run(["--help"], "http://127.0.0.1:1");
  assert.equal(help.code, 0);
  const listed = help.stdout.split("Commands:\n")[1].split("\n\n")[0]
    .split("\n");
  const column = new Set(listed.map((l) => l.search(/(?<=\S {2,})\S/)));
  assert.equal(column.size, 1, listed.join("\n"));
  assert.ok(listed.some((l) => /^ {2}login +Get a TOTP seed/.test(l)));
});
