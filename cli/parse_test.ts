/** parseArgs(): global flags, errors, help topics, host, task and login commands. */
import assert from "node:assert/strict";
import { parseArgs } from "./parse.ts";
import { create, usageError } from "./_test_api.ts";

Deno.test("parseArgs() takes --flag=value and global flags anywhere", () => {
  assert.deepEqual(
    parseArgs([
      "--api=http://[::1]:8750/",
      "vm",
      "--json",
      "create",
      "--name=db-1",
      "--cpus",
      "64",
      "--memory=1048576",
      "--image",
      "tiny",
      "--idempotency-key",
      "k1",
      "--timeout",
      "2.5",
    ]),
    {
      api: "http://[::1]:8750",
      json: true,
      command: "vm create",
      input: { name: "db-1", cpus: 64, memory: 1048576, image: "tiny" },
      userData: undefined,
      idempotencyKey: "k1",
      wait: { timeoutSeconds: 2.5 },
    },
  );
  assert.equal(
    parseArgs(["vm", "stop", "web1", "--no-wait"]).command,
    "vm stop",
  );
  assert.deepEqual(parseArgs(["vm", "delete", "--no-wait", "vm-1"]), {
    api: undefined,
    json: false,
    command: "vm delete",
    vm: "vm-1",
    wait: null,
  });
});

Deno.test("parseArgs() reports missing flags, values and arguments", () => {
  usageError(
    ["vm", "create"],
    "missing required flag --name, --cpus, --memory",
  );
  usageError([...create], "missing required flag --memory");
  usageError([...create, "--memory"], "--memory needs a value");
  usageError(["vm", "create", "--name", "--cpus", "1"], "--name needs a value");
  usageError(["vm", "show"], "missing VM id or name");
  usageError(["vm", "show", "a", "b"], "unexpected argument 'b'");
  usageError(["task", "show"], "missing task id");
  usageError(["vm", "list", "extra"], "unexpected argument 'extra'");
});

Deno.test("parseArgs() rejects unknown commands and flags, and flags of other commands", () => {
  usageError(["vms", "list"], "unknown command 'vms'");
  usageError(["vm", "pause", "web1"], "unknown command 'vm pause'");
  usageError(["vm", "list", "--bogus"], "unknown flag --bogus");
  usageError(["vm", "list", "-x"], "unknown flag -x");
  usageError(
    ["vm", "list", "--cpus", "1"],
    "--cpus is not a flag of 'ucloud vm list'",
  );
  usageError(
    ["vm", "show", "web1", "--wait"],
    "--wait is not a flag of 'ucloud vm show'",
  );
  usageError(["vm", "list", "--json=yes"], "--json takes no value");
  usageError(["vm", "list", "--json", "--json"], "--json is given twice");
  usageError(
    ["vm", "stop", "web1", "--wait", "--no-wait"],
    "--wait and --no-wait exclude each other",
  );
  usageError(
    ["vm", "start", "web1", "--timeout", "0"],
    /^--timeout must be a number of seconds/,
  );
  usageError(
    ["vm", "start", "web1", "--timeout", "soon"],
    /^--timeout must be a number of seconds/,
  );
  usageError(
    ["vm", "stop", "web1", "--timeout", "0.5"],
    '--timeout must be a whole number of seconds from 1 to 3600, got "0.5"',
  );
  usageError(
    ["vm", "reboot", "web1", "--timeout", "3601"],
    '--timeout must be a whole number of seconds from 1 to 3600, got "3601"',
  );
  usageError(["vm", "start", "web1", "--force"], /^--force is not a flag/);
  usageError(
    ["vm", "list", "--api", "localhost:8750"],
    /^--api must be an http\(s\) URL/,
  );
  const missing = usageError([], "missing command");
  assert.equal(missing.showHelp, true);
  assert.deepEqual(usageError(["vm"], "missing vm command").topic, ["vm"]);
});

Deno.test("parseArgs() validates task list filters", () => {
  assert.deepEqual(
    parseArgs([
      "task",
      "list",
      "--state",
      "failed",
      "--vm",
      "web1",
      "--limit",
      "5",
      "--kind",
      "vm.create",
    ]),
    {
      api: undefined,
      json: false,
      command: "task list",
      query: { state: "failed", kind: "vm.create", vm: "web1", limit: 5 },
    },
  );
  usageError(
    ["task", "list", "--state", "done"],
    /^--state must be one of queued, running, succeeded, failed, cancelled/,
  );
  usageError(
    ["task", "list", "--limit", "0"],
    '--limit must be an integer from 1 to 10000, got "0"',
  );
});

Deno.test("parseArgs() reads host drain, enable and rebalance", () => {
  assert.deepEqual(parseArgs(["host", "drain", "h1"]), {
    api: undefined,
    json: false,
    command: "host drain",
    host: "h1",
    wait: { timeoutSeconds: 600 },
  });
  assert.deepEqual(
    parseArgs(["host", "drain", "--no-wait", "node-1.dc"]),
    {
      api: undefined,
      json: false,
      command: "host drain",
      host: "node-1.dc",
      wait: null,
    },
  );
  assert.deepEqual(
    (parseArgs(["host", "drain", "h1", "--timeout", "5"]) as {
      wait: unknown;
    }).wait,
    { timeoutSeconds: 5 },
  );
  assert.deepEqual(parseArgs(["host", "enable", "h1", "--json"]), {
    api: undefined,
    json: true,
    command: "host enable",
    host: "h1",
  });
  assert.deepEqual(parseArgs(["host", "rebalance"]), {
    api: undefined,
    json: false,
    command: "host rebalance",
    dryRun: false,
  });
  usageError(["host", "drain"], "missing host name");
  usageError(
    ["host", "drain", "H_1"],
    /^host name must be 1-63 lowercase letters, digits, '\.' or '-'.*got "H_1"$/,
  );
  usageError(["host", "enable", "-h1"], "unknown flag -h1");
  usageError(["host", "enable", "h1", "h2"], "unexpected argument 'h2'");
  usageError(
    ["host", "enable", "h1", "--no-wait"],
    "--no-wait is not a flag of 'ucloud host enable'",
  );
  usageError(["host", "rebalance", "h1"], "unexpected argument 'h1'");
});

Deno.test("parseArgs() returns help at every level", () => {
  const topic = (argv: string[]) => {
    const args = parseArgs(argv);
    assert.equal(args.command, "help");
    return (args as { topic: string[] }).topic;
  };
  assert.deepEqual(topic(["--help"]), []);
  assert.deepEqual(topic(["help"]), []);
  assert.deepEqual(topic(["vm", "--help"]), ["vm"]);
  assert.deepEqual(topic(["vm", "help"]), ["vm"]);
  assert.deepEqual(topic(["vm", "help", "stop"]), ["vm", "stop"]);
  assert.deepEqual(topic(["help", "task"]), ["task"]);
  assert.deepEqual(topic(["help", "vm", "create"]), ["vm", "create"]);
  assert.deepEqual(topic(["vm", "create", "-h"]), ["vm", "create"]);
  assert.deepEqual(topic(["host", "list", "--help"]), ["host", "list"]);
  assert.deepEqual(topic(["network", "--help"]), ["network"]);
  assert.deepEqual(topic(["help", "network", "create"]), [
    "network",
    "create",
  ]);
  assert.deepEqual(topic(["vm", "detach", "--help"]), ["vm", "detach"]);
  usageError(
    ["help", "vm", "pause"],
    "no help for unknown command 'vm pause'",
  );
});

Deno.test("parseArgs() reads login, whoami and logout", () => {
  assert.deepEqual(
    parseArgs(["login", "--name", "alice", "--password-stdin"]),
    {
      api: undefined,
      json: false,
      command: "login",
      name: "alice",
      realm: "ucloud",
      passwordStdin: true,
      replace: false,
    },
  );
  const r = parseArgs(["login", "--realm", "ops", "--replace"]);
  assert.equal(r.command, "login");
  assert.ok(r.command === "login" && r.realm === "ops" && r.replace);
  const t = parseArgs(["login", "--replace", "--token", "123456"]);
  assert.ok(t.command === "login" && t.token === "123456");
  assert.throws(
    () => parseArgs(["login", "--replace", "--token", "12ab"]),
    /--token must be 6 digits/,
  );
  assert.equal(parseArgs(["whoami", "--json"]).command, "whoami");
  assert.equal(parseArgs(["logout"]).command, "logout");
  assert.deepEqual(
    (parseArgs(["login", "--help"]) as { topic: string[] }).topic,
    ["login"],
  );
  assert.throws(() => parseArgs(["login", "--name", "a/b"]), /--name must be/);
  assert.throws(() => parseArgs(["whoami", "--cpus", "1"]), /not a flag/);
  assert.throws(() => parseArgs(["whoami", "extra"]), /unexpected argument/);
});

Deno.test("parseArgs() reads host shutdown, rebalance --dry-run and vm create --movable", () => {
  assert.deepEqual(parseArgs(["host", "shutdown", "h1"]), {
    api: undefined,
    json: false,
    command: "host shutdown",
    host: "h1",
    wait: { timeoutSeconds: 600 },
  });
  assert.deepEqual(
    (parseArgs(["host", "shutdown", "h1", "--no-wait"]) as { wait: unknown })
      .wait,
    null,
  );
  usageError(["host", "shutdown"], "missing host name");
  assert.deepEqual(parseArgs(["host", "rebalance", "--dry-run"]), {
    api: undefined,
    json: false,
    command: "host rebalance",
    dryRun: true,
  });
  assert.equal(
    (parseArgs(["host", "rebalance"]) as { dryRun: boolean }).dryRun,
    false,
  );
  usageError(
    ["host", "drain", "h1", "--dry-run"],
    "--dry-run is not a flag of 'ucloud host drain'",
  );
  const create = (argv: string[]) =>
    (parseArgs([
      "vm",
      "create",
      "--name",
      "a",
      "--cpus",
      "1",
      "--memory",
      "128",
      ...argv,
    ]) as { input: Record<string, unknown> }).input;
  assert.equal(create(["--movable"]).movable, true);
  assert.equal("movable" in create([]), false);
});

Deno.test("parseArgs() reads a flag again that stood where a value was due", () => {
  // --cpus is not the value of --name: it and its own value are read.
  const err = usageError(
    ["vm", "--name", "--cpus", "1", "create"],
    "--name needs a value",
  );
  assert.deepEqual(err.topic, ["vm", "create"]);
  usageError(["vm", "list", "-abc"], "unknown flag -abc");
  usageError(["vm", "list", "-hx"], "unknown flag -hx");
  assert.deepEqual(
    parseArgs(["vm", "show", "--", "--json"]),
    { api: undefined, json: false, command: "vm show", vm: "--json" },
  );
});
