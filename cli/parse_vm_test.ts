/** parseArgs() of the vm commands: create, stop and reboot, attach and detach. */
import assert from "node:assert/strict";
import { parseArgs } from "./parse.ts";
import { create, usageError } from "./_test_api.ts";

Deno.test("parseArgs() reads vm create with its defaults", () => {
  assert.deepEqual(parseArgs([...create, "--memory", "128"]), {
    api: undefined,
    json: false,
    command: "vm create",
    input: { name: "web1", cpus: 1, memory: 128, image: undefined },
    userData: undefined,
    idempotencyKey: undefined,
    wait: { timeoutSeconds: 120 },
  });
});

Deno.test("parseArgs() takes --key repeated and --user-data; a key twice or more than 32 is a usage error", () => {
  const parsed = parseArgs([
    ...create,
    "--memory",
    "128",
    "--key",
    "k2",
    "--key",
    "k1",
    "--user-data",
    "cloud.yaml",
  ]);
  assert.ok(parsed.command === "vm create");
  assert.deepEqual(parsed.input.keys, ["k2", "k1"]);
  assert.equal(parsed.userData, "cloud.yaml");
  const base = [...create, "--memory", "128"];
  usageError(
    [...base, "--key", "k1", "--key", "k1"],
    "--key k1 is given twice",
  );
  const many = Array.from({ length: 33 }, (_, i) => ["--key", `k${i}`]).flat();
  usageError([...base, ...many], "--key may be given at most 32 times, got 33");
  usageError(
    [...base, "--user-data", "a", "--user-data", "b"],
    "--user-data is given twice",
  );
});

Deno.test("parseArgs() passes --disk in GiB only when given", () => {
  const parsed = parseArgs([...create, "--memory", "128", "--disk", "20"]);
  assert.equal(parsed.command, "vm create");
  if (parsed.command !== "vm create") return;
  assert.deepEqual(parsed.input, {
    name: "web1",
    cpus: 1,
    memory: 128,
    image: undefined,
    disk: 20,
  });
  const max = parseArgs([...create, "--memory", "128", "--disk=65536"]);
  assert.equal(max.command === "vm create" && max.input.disk, 65536);
  const none = parseArgs([...create, "--memory", "128"]);
  assert.ok(none.command === "vm create" && !("disk" in none.input));
});

Deno.test("parseArgs() rejects sizes and names out of range, naming the flag", () => {
  const cases: [string[], string][] = [
    [
      ["--memory", "128", "--cpus", "0"],
      '--cpus must be an integer from 1 to 64, got "0"',
    ],
    [
      ["--memory", "128", "--cpus", "65"],
      '--cpus must be an integer from 1 to 64, got "65"',
    ],
    [
      ["--memory", "128", "--cpus", "1.5"],
      '--cpus must be an integer from 1 to 64, got "1.5"',
    ],
    [
      ["--memory", "128", "--cpus", "two"],
      '--cpus must be an integer from 1 to 64, got "two"',
    ],
    [
      ["--cpus", "1", "--memory", "95"],
      '--memory must be a whole number of MiB from 96 to 1048576, got "95"',
    ],
    [
      ["--cpus", "1", "--memory", "1048577"],
      '--memory must be a whole number of MiB from 96 to 1048576, got "1048577"',
    ],
    [
      ["--cpus", "1", "--memory", "1G"],
      '--memory must be a whole number of MiB from 96 to 1048576, got "1G"',
    ],
    [
      ["--cpus", "1", "--memory", "-128"],
      '--memory must be a whole number of MiB from 96 to 1048576, got "-128"',
    ],
    [
      ["--cpus", "1", "--memory", "128", "--disk", "0"],
      '--disk must be a whole number of GiB from 1 to 65536, got "0"',
    ],
    [
      ["--cpus", "1", "--memory", "128", "--disk", "65537"],
      '--disk must be a whole number of GiB from 1 to 65536, got "65537"',
    ],
    [
      ["--cpus", "1", "--memory", "128", "--disk", "1.5"],
      '--disk must be a whole number of GiB from 1 to 65536, got "1.5"',
    ],
    [
      ["--cpus", "1", "--memory", "128", "--disk", "20G"],
      '--disk must be a whole number of GiB from 1 to 65536, got "20G"',
    ],
  ];
  for (const [flags, message] of cases) {
    const err = usageError(
      ["vm", "create", "--name", "web1", ...flags],
      message,
    );
    assert.deepEqual(err.topic, ["vm", "create"]);
  }
  const sized = ["--cpus", "1", "--memory", "128"];
  for (const name of ["Web1", "web_1", "-web", "web-", "a".repeat(64), ""]) {
    usageError(
      ["vm", "create", `--name=${name}`, ...sized],
      name === ""
        ? "--name must not be empty"
        : /^--name must be 1-63 lowercase letters/,
    );
  }
  usageError(
    ["vm", "create", "--name", "web1", ...sized, "--image", "Tiny"],
    /^--image must be 1-63/,
  );
  assert.equal(
    (parseArgs(["vm", "create", "--name", "a".repeat(63), ...sized]) as {
      input: { name: string };
    })
      .input.name.length,
    63,
  );
});

Deno.test("parseArgs() takes --network several times for vm create", () => {
  const sized = [...create, "--memory", "128"];
  const parsed = parseArgs([
    ...sized,
    "--network",
    "lan",
    "--network=net-0mww4hqs1-cc89e561",
  ]);
  assert.equal(parsed.command, "vm create");
  assert.deepEqual((parsed as { input: unknown }).input, {
    name: "web1",
    cpus: 1,
    memory: 128,
    image: undefined,
    networks: ["lan", "net-0mww4hqs1-cc89e561"],
  });
  const eight = Array.from({ length: 8 }, (_, i) => ["--network", `n${i}`]);
  assert.equal(
    (parseArgs([...sized, ...eight.flat()]) as {
      input: { networks: string[] };
    }).input.networks.length,
    8,
  );
  usageError(
    [...sized, ...eight.flat(), "--network", "n8"],
    "--network may be given at most 8 times (one NIC each), got 9",
  );
  usageError(
    [...sized, "--network", "lan", "--network", "dmz", "--network", "lan"],
    "--network lan is given twice",
  );
  usageError(
    [...sized, "--network", "LAN"],
    `--network must be a network id or name (lowercase letters, digits and '-'), got "LAN"`,
  );
  usageError([...sized, "--network="], "--network must not be empty");
  usageError([...sized, "--network"], "--network needs a value");
  // Other value flags are still given once.
  usageError(
    [...sized, "--image", "a", "--image", "b"],
    "--image is given twice",
  );
});

Deno.test("parseArgs() reads vm attach and vm detach", () => {
  assert.deepEqual(parseArgs(["vm", "attach", "web1", "--network", "lan"]), {
    api: undefined,
    json: false,
    command: "vm attach",
    vm: "web1",
    network: "lan",
    wait: { timeoutSeconds: 120 },
  });
  assert.deepEqual(
    parseArgs(["vm", "attach", "--no-wait", "--network=lan", "vm-1"]),
    {
      api: undefined,
      json: false,
      command: "vm attach",
      vm: "vm-1",
      network: "lan",
      wait: null,
    },
  );
  assert.deepEqual(parseArgs(["vm", "detach", "web1", "--slot", "7"]), {
    api: undefined,
    json: false,
    command: "vm detach",
    vm: "web1",
    nic: { slot: 7 },
    wait: { timeoutSeconds: 120 },
  });
  assert.deepEqual(
    parseArgs([
      "vm",
      "detach",
      "web1",
      "--network",
      "lan",
      "--timeout",
      "5",
      "--json",
    ]),
    {
      api: undefined,
      json: true,
      command: "vm detach",
      vm: "web1",
      nic: { network: "lan" },
      wait: { timeoutSeconds: 5 },
    },
  );
  const cases: [string[], string | RegExp][] = [
    [["vm", "attach", "web1"], "missing required flag --network"],
    [["vm", "attach", "--network", "lan"], "missing VM id or name"],
    [
      ["vm", "attach", "web1", "--network", "lan", "--network", "dmz"],
      "--network is given twice",
    ],
    [
      ["vm", "attach", "web1", "--network", "Lan"],
      /^--network must be a network id or name/,
    ],
    [
      ["vm", "attach", "web1", "web2", "--network", "lan"],
      "unexpected argument 'web2'",
    ],
    [
      ["vm", "attach", "web1", "--network", "lan", "--slot", "1"],
      "--slot is not a flag of 'ucloud vm attach'",
    ],
    [
      ["vm", "attach", "web1", "--network", "lan", "--wait", "--no-wait"],
      "--wait and --no-wait exclude each other",
    ],
    [
      ["vm", "detach", "web1"],
      "give either --slot or --network to choose the NIC",
    ],
    [
      ["vm", "detach", "web1", "--slot", "0", "--network", "lan"],
      "give either --slot or --network to choose the NIC",
    ],
    [["vm", "detach", "--slot", "0"], "missing VM id or name"],
    [
      ["vm", "detach", "web1", "--slot", "8"],
      '--slot must be an integer from 0 to 7, got "8"',
    ],
    [
      ["vm", "detach", "web1", "--slot", "-1"],
      '--slot must be an integer from 0 to 7, got "-1"',
    ],
    [
      ["vm", "detach", "web1", "--slot", "eth0"],
      '--slot must be an integer from 0 to 7, got "eth0"',
    ],
    [
      ["vm", "detach", "web1", "--slot", "0", "--slot", "1"],
      "--slot is given twice",
    ],
    [
      ["vm", "detach", "web1", "--network", "a", "--network", "b"],
      "--network is given twice",
    ],
    [
      ["vm", "detach", "web1", "--slot", "1", "--timeout", "0"],
      /^--timeout must be a number of seconds/,
    ],
  ];
  for (const [argv, message] of cases) {
    const err = usageError(argv, message);
    assert.deepEqual(err.topic, argv.slice(0, 2));
  }
  usageError(
    ["vm", "show", "web1", "--network", "lan"],
    "--network is not a flag of 'ucloud vm show'",
  );
});

Deno.test("parseArgs() vm stop and vm reboot take --force and --timeout (the guest's time)", () => {
  assert.deepEqual(parseArgs(["vm", "stop", "web1", "--force"]), {
    api: undefined,
    json: false,
    command: "vm stop",
    vm: "web1",
    force: true,
    wait: { timeoutSeconds: 180 },
  });
  assert.deepEqual(parseArgs(["vm", "stop", "web1", "--timeout", "30"]), {
    api: undefined,
    json: false,
    command: "vm stop",
    vm: "web1",
    force: false,
    timeoutSeconds: 30,
    wait: { timeoutSeconds: 150 },
  });
  const reboot = parseArgs(["vm", "reboot", "web1", "--no-wait"]);
  assert.equal(reboot.command, "vm reboot");
  assert.equal((reboot as { wait: unknown }).wait, null);
});
