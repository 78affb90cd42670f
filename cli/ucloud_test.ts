import assert from "node:assert/strict";
import type {
  HostView,
  Network,
  Nic,
  RebalanceResult,
  Task,
  Vm,
} from "./client.ts";
import { UsageError } from "./errors.ts";
import { main } from "./main.ts";
import { formatTable, type Output } from "./output.ts";
import { parseArgs } from "./parse.ts";

// ---------------------------------------------------------------- parseArgs

const create = ["vm", "create", "--name", "web1", "--cpus", "1"];

Deno.test("parseArgs() reads vm create with its defaults", () => {
  assert.deepEqual(parseArgs([...create, "--memory", "128"]), {
    api: undefined,
    json: false,
    command: "vm create",
    input: { name: "web1", cpus: 1, memory: 128, image: undefined },
    idempotencyKey: undefined,
    wait: { timeoutSeconds: 120 },
  });
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

function usageError(argv: string[], message: string | RegExp): UsageError {
  let caught: unknown;
  try {
    parseArgs(argv);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof UsageError, `${argv.join(" ")} must throw`);
  assert.equal(caught.exitCode, 2);
  if (typeof message === "string") assert.equal(caught.message, message);
  else assert.match(caught.message, message);
  return caught;
}

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

Deno.test("parseArgs() reads network create, sending only the flags given", () => {
  assert.deepEqual(parseArgs(["network", "create", "--name", "lan"]), {
    api: undefined,
    json: false,
    command: "network create",
    input: { name: "lan" },
  });
  const input = (argv: string[]) => {
    const args = parseArgs(["network", "create", "--name=lan", ...argv]);
    assert.equal(args.command, "network create");
    return (args as { input: unknown }).input;
  };
  assert.deepEqual(
    input([
      "--ipv4",
      "10.0.0.0/24",
      "--dhcp4",
      "--dhcp6",
      "--mode",
      "unicast",
      "--prefix",
      "fd00:1:2:3::/64",
    ]),
    {
      name: "lan",
      prefix: "fd00:1:2:3::/64",
      ipv4: "10.0.0.0/24",
      mode: "unicast",
      dhcp: { v6: true, v4: true },
    },
  );
  assert.deepEqual(input(["--dhcp6"]), {
    name: "lan",
    dhcp: { v6: true, v4: false },
  });
  assert.deepEqual(
    input(["--public", "--bridge", "br-pub.0", "--prefix=2001:db8:1:2::/64"]),
    {
      name: "lan",
      kind: "public",
      prefix: "2001:db8:1:2::/64",
      bridge: "br-pub.0",
    },
  );
  assert.deepEqual(
    input(["--prefix", "2001:0db8:0:1:0:0:0:0/64", "--ipv4", "172.16.0.0/12"]),
    { name: "lan", prefix: "2001:0db8:0:1:0:0:0:0/64", ipv4: "172.16.0.0/12" },
  );
});

Deno.test("parseArgs() rejects network create input the API would refuse", () => {
  const cases: [string[], string | RegExp][] = [
    [[], "missing required flag --name"],
    [["--name", "LAN"], /^--name must be 1-63 lowercase letters/],
    [["--name", "lan", "extra"], "unexpected argument 'extra'"],
    [
      ["--name", "lan", "--bridge", "br0"],
      "--bridge needs --public: private networks have no bridge",
    ],
    [
      ["--name", "lan", "--public", "--prefix", "2001:db8::/64"],
      "--public needs --bridge (the hosts' bridge, e.g. br0)",
    ],
    [
      ["--name", "lan", "--public", "--bridge", "br0"],
      "--public needs --prefix (the IPv6 /64 of the bridge)",
    ],
    [
      [
        "--name",
        "lan",
        "--public",
        "--bridge",
        "br0",
        "--prefix",
        "2001:db8::/64",
        "--mode",
        "unicast",
      ],
      "--mode is for private networks only, not with --public",
    ],
    [
      [
        "--name",
        "lan",
        "--public",
        "--bridge",
        "bridge-name-too-long",
        "--prefix",
        "2001:db8::/64",
      ],
      /^--bridge must be 1-15 letters, digits, '_', '\.' or '-', got "bridge-name-too-long"$/,
    ],
    [
      ["--name", "lan", "--mode", "broadcast"],
      '--mode must be multicast or unicast, got "broadcast"',
    ],
    [
      ["--name", "lan", "--dhcp4"],
      "--dhcp4 needs --ipv4 (the subnet DHCPv4 serves)",
    ],
    [
      ["--name", "lan", "--ipv4", "10.0.0.1/24"],
      "--ipv4 10.0.0.1/24 has host bits set: the subnet is 10.0.0.0/24",
    ],
    [["--name", "lan", "--ipv6", "fd00::/64"], "unknown flag --ipv6"],
    [
      ["--name", "lan", "--slot", "1"],
      "--slot is not a flag of 'ucloud network create'",
    ],
    [["--name", "lan", "--dhcp6=yes"], "--dhcp6 takes no value"],
  ];
  for (const [argv, message] of cases) {
    const err = usageError(["network", "create", ...argv], message);
    assert.deepEqual(err.topic, ["network", "create"]);
  }
  for (
    const prefix of [
      "fd00::/48",
      "fd00::",
      "fd00::1::/64",
      "fd0g::/64",
      "1:2:3:4:5:6:7/64",
      "1:2:3:4:5:6:7:8:9/64",
      "1:2:3:4::5:6:7:8/64",
      "12345::/64",
      "10.0.0.0/64",
    ]
  ) {
    usageError(
      ["network", "create", "--name", "lan", "--prefix", prefix],
      `--prefix must be an IPv6 /64 such as 2001:db8:1::/64, got "${prefix}"`,
    );
  }
  for (
    const ipv4 of [
      "10.0.0.0",
      "10.0.0/24",
      "10.0.0.0/7",
      "10.0.0.0/31",
      "256.0.0.0/8",
      "fd00::/64",
    ]
  ) {
    usageError(
      ["network", "create", "--name", "lan", "--ipv4", ipv4],
      `--ipv4 must be an IPv4 subnet from /8 to /30 such as 10.0.0.0/24, got "${ipv4}"`,
    );
  }
});

Deno.test("parseArgs() reads network list, show and delete", () => {
  assert.deepEqual(parseArgs(["network", "list", "--json"]), {
    api: undefined,
    json: true,
    command: "network list",
  });
  for (const command of ["show", "delete"]) {
    assert.deepEqual(parseArgs(["network", command, "lan"]), {
      api: undefined,
      json: false,
      command: `network ${command}`,
      network: "lan",
    });
    usageError(["network", command], "missing network id or name");
    usageError(["network", command, "a", "b"], "unexpected argument 'b'");
  }
  usageError(["network", "list", "lan"], "unexpected argument 'lan'");
  usageError(
    ["network", "delete", "lan", "--no-wait"],
    "--no-wait is not a flag of 'ucloud network delete'",
  );
  usageError(["network", "rename", "lan"], "unknown command 'network rename'");
  usageError(["networks", "list"], "unknown command 'networks'");
  assert.deepEqual(
    usageError(["network"], "missing network command").topic,
    ["network"],
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

// ---------------------------------------------------------------- formatTable

Deno.test("formatTable() pads columns, aligns right on demand and trims line ends", () => {
  const rows = [{ id: "vm-1", name: "web1", cpus: 2 }, {
    id: "vm-22",
    name: "db",
    cpus: 16,
  }];
  const table = formatTable(rows, [
    { header: "ID", value: (r) => r.id },
    { header: "CPUS", value: (r) => r.cpus, align: "right" },
    { header: "NAME", value: (r) => r.name },
  ]);
  assert.equal(
    table,
    [
      "ID     CPUS  NAME",
      "vm-1      2  web1",
      "vm-22    16  db",
    ].join("\n"),
  );
});

Deno.test("formatTable() prints only the header when there are no rows", () => {
  assert.equal(
    formatTable([], [{ header: "ID", value: String }, {
      header: "NAME",
      value: String,
    }]),
    "ID  NAME",
  );
});

// ---------------------------------------------------------------- fake API

type Step<T> = Partial<T> | "gone";

/** A small stateful API that mimics the real one; steps advance per GET. */
class FakeApi {
  readonly vms = new Map<string, Vm>();
  readonly tasks = new Map<string, Task>();
  readonly vmSteps = new Map<string, Step<Vm["status"]>[]>();
  readonly taskSteps = new Map<string, Partial<Task>[]>();
  /** The VM's NICs after each `GET /v1/vms/{id}` (undefined: unchanged). */
  readonly nicSteps = new Map<string, (Nic[] | undefined)[]>();
  readonly networks = new Map<string, Network>();
  readonly requests: {
    method: string;
    url: URL;
    headers: Headers;
    body: unknown;
  }[] = [];
  hosts: HostView[] = [];
  /** Applied to the host of that name at each `GET /v1/hosts`. */
  readonly hostSteps = new Map<string, Partial<HostView>[]>();
  /** What `POST /v1/maintenance/rebalance` answers. */
  rebalance?: RebalanceResult;
  /** Answers instead of the fake when it returns a response. */
  override?: (method: string, url: URL) => Response | undefined;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  #taskSeq = 0;

  constructor() {
    this.#server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  close(): Promise<void> {
    return this.#server.shutdown();
  }

  addVm(id: string, name: string, status: Partial<Vm["status"]> = {}): Vm {
    const vm: Vm = {
      id,
      owner: "alice",
      spec: { name, cpus: 1, memory: 128, image: "tiny" },
      nics: [],
      desired: "running",
      status: {
        phase: "running",
        host: "h1",
        updatedAt: new Date().toISOString(),
        ...status,
      },
      createdAt: new Date().toISOString(),
    };
    this.vms.set(id, vm);
    return vm;
  }

  addNetwork(id: string, name: string, fields: Partial<Network> = {}): Network {
    const index = this.networks.size + 1;
    const net: Network = {
      id,
      name,
      owner: "alice",
      kind: "private",
      prefix: `fdc1:d00:0:${index}::/64`,
      vni: 99 + index,
      mode: "multicast",
      group: `ff05::${(99 + index).toString(16)}`,
      ra: true,
      dhcp: { v6: false, v4: false },
      vms: [],
      createdAt: new Date().toISOString(),
      ...fields,
    };
    this.networks.set(id, net);
    return net;
  }

  /** A NIC of `vm` in network `net` in the first free slot. */
  addNic(vm: Vm, net: string): Nic {
    const nics = vm.nics ??= [];
    let slot = 0;
    while (nics.some((n) => n.slot === slot)) slot++;
    const hex = (slot + 16).toString(16);
    const nic: Nic = {
      slot,
      network: net,
      mac: `52:54:00:00:00:${hex}`,
      ipv6: `${this.networks.get(net)!.prefix.slice(0, -3)}5054:ff:fe00:${hex}`,
      state: "attached",
    };
    nics.push(nic);
    this.networks.get(net)!.vms.push(vm.id);
    return nic;
  }

  addTask(kind: string, vm: string, fields: Partial<Task> = {}): Task {
    const now = new Date().toISOString();
    const task: Task = {
      id: `t-${++this.#taskSeq}`,
      kind,
      target: "any",
      payload: { vm },
      state: "queued",
      attempts: 0,
      maxAttempts: 3,
      notBefore: 0,
      createdAt: now,
      updatedAt: now,
      history: [{ at: now, state: "queued" }],
      ...fields,
    };
    this.tasks.set(task.id, task);
    return task;
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const text = await req.text();
    const body = text ? JSON.parse(text) : undefined;
    this.requests.push({ method: req.method, url, headers: req.headers, body });
    const answer = this.override?.(req.method, url);
    if (answer) return answer;
    const parts = url.pathname.split("/").slice(2);
    const key = `${req.method} ${parts[0]}${parts.length > 1 ? "/:id" : ""}${
      parts[2] ? `/${parts[2]}` : ""
    }`;
    const id = parts[1];
    switch (key) {
      case "POST vms": {
        const vm = this.addVm(`vm-${this.vms.size + 1}`, body.name, {
          phase: "pending",
          host: undefined,
        });
        for (const net of body.networks ?? []) this.addNic(vm, net);
        const task = this.addTask("vm.create", vm.id);
        return Response.json({ vm, task }, { status: 201 });
      }
      case "GET vms":
        return Response.json({ items: [...this.vms.values()] });
      case "GET vms/:id": {
        const vm = this.vms.get(id);
        const step = this.vmSteps.get(id)?.shift();
        if (vm && step === "gone") this.vms.delete(id);
        else if (vm && step) {
          Object.assign(vm.status, step, {
            updatedAt: new Date().toISOString(),
          });
        }
        const nics = this.nicSteps.get(id)?.shift();
        if (vm && nics) vm.nics = nics;
        return this.vms.has(id) ? Response.json(vm) : notFound("vm", id);
      }
      case "POST vms/:id/nics": {
        const vm = this.vms.get(id);
        if (!vm) return notFound("vm", id);
        this.addNic(vm, body.network);
        const task = vm.status.host ? this.addTask("vm.nics", id) : null;
        return Response.json({ vm, task }, { status: 202 });
      }
      case "DELETE vms/:id/nics": {
        const vm = this.vms.get(id);
        const slot = Number(parts[3]);
        const nic = vm?.nics?.find((n) => n.slot === slot);
        if (!vm || !nic) return notFound("nic", `${id}/${slot}`);
        if (vm.status.host) {
          nic.state = "detaching";
          return Response.json({ vm, task: this.addTask("vm.nics", id) }, {
            status: 202,
          });
        }
        vm.nics = vm.nics!.filter((n) => n !== nic);
        return Response.json({ vm, task: null });
      }
      case "POST networks": {
        const net = this.addNetwork(`net-${this.networks.size + 1}`, body.name);
        return Response.json(net, { status: 201 });
      }
      case "GET networks":
        return Response.json({ items: [...this.networks.values()] });
      case "GET networks/:id": {
        const net = this.networks.get(id);
        return net ? Response.json(net) : notFound("network", id);
      }
      case "DELETE networks/:id": {
        const net = this.networks.get(id);
        if (!net) return notFound("network", id);
        if (net.vms.length) {
          return Response.json({
            error: {
              status: 409,
              code: "conflict",
              message: `Cannot delete network ${id}: VMs ${
                net.vms.join(", ")
              } have NICs in it; detach them first`,
            },
          }, { status: 409 });
        }
        this.networks.delete(id);
        return Response.json({ deleted: id });
      }
      case "DELETE vms/:id":
      case "POST vms/:id/start":
      case "POST vms/:id/stop":
      case "POST vms/:id/reboot": {
        const vm = this.vms.get(id);
        if (!vm) return notFound("vm", id);
        const action = parts[2] ?? "delete";
        return Response.json({ vm, task: this.addTask(`vm.${action}`, id) }, {
          status: 202,
        });
      }
      case "GET hosts":
        for (const h of this.hosts) {
          Object.assign(h, this.hostSteps.get(h.name)?.shift());
        }
        return Response.json({ items: this.hosts });
      case "POST hosts/:id/drain":
      case "POST hosts/:id/enable": {
        const host = this.hosts.find((h) => h.name === id);
        if (!host) return notFound("host", id);
        const state = parts[2] === "drain" ? "draining" : "active";
        if (host.state === state) return Response.json({ host, task: null });
        host.state = state;
        const task = this.addTask(`host.${parts[2]}`, "", {
          payload: { host: id } as Task["payload"],
        });
        return Response.json({ host, task }, {
          status: state === "draining" ? 202 : 200,
        });
      }
      case "POST maintenance/:id":
        return Response.json(this.rebalance);
      case "GET tasks": {
        const q = url.searchParams;
        const items = [...this.tasks.values()].filter((t) =>
          (!q.has("state") || t.state === q.get("state")) &&
          (!q.has("vm") || t.payload.vm === q.get("vm"))
        );
        return Response.json({ items });
      }
      case "GET tasks/:id": {
        const task = this.tasks.get(id);
        if (!task) return notFound("task", id);
        Object.assign(task, this.taskSteps.get(id)?.shift());
        return Response.json(task);
      }
    }
    return Response.json({
      error: { status: 404, code: "not_found", message: `No route ${key}` },
    }, { status: 404 });
  }
}

function notFound(kind: string, id: string): Response {
  return Response.json(
    {
      error: {
        status: 404,
        code: "not_found",
        message: `Cannot find ${kind} ${id}`,
      },
    },
    { status: 404 },
  );
}

class Captured implements Output {
  text = "";
  constructor(private readonly tty = false) {}
  write(text: string): void {
    this.text += text;
  }
  isTerminal(): boolean {
    return this.tty;
  }
}

async function run(
  argv: string[],
  api: FakeApi | string,
  { tty = false } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Captured();
  const stderr = new Captured(tty);
  const env = { UCLOUD_API: typeof api === "string" ? api : api.url };
  const code = await main(argv, { stdout, stderr, env, pollIntervalMs: 5 });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

async function withApi(fn: (api: FakeApi) => Promise<void>): Promise<void> {
  const api = new FakeApi();
  try {
    await fn(api);
  } finally {
    await api.close();
  }
}

async function closedPort(): Promise<string> {
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: () => {},
  }, () => new Response());
  const url = `http://127.0.0.1:${server.addr.port}`;
  await server.shutdown();
  return url;
}

// ---------------------------------------------------------------- main()

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

Deno.test("main() lists VMs, hosts and tasks as aligned tables", () =>
  withApi(async (api) => {
    api.addVm("vm-1", "web1");
    api.addVm("vm-2", "database", { phase: "pending", host: undefined });
    api.vms.get("vm-2")!.spec.memory = 2048;
    api.hosts = [{
      name: "h1",
      capacity: { cpus: 8, memoryMiB: 16384 },
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
      "NAME  STATE     ALIVE  CPUS    MEM(MiB)  VMS  HEARTBEAT\n" +
        "h1    active    yes     3/8  2176/16384    2  1s ago\n" +
        "h2    draining  no      0/4      0/4096    0  -\n",
    );
    // A host tracking local disk adds DISK used/total in GiB.
    api.hosts[0].capacity.diskMiB = 100 * 1024 + 512;
    api.hosts[0].usage.diskMiB = 20 * 1024;
    const disk = await run(["host", "list"], api);
    assert.equal(
      disk.stdout,
      "NAME  STATE     ALIVE  CPUS    MEM(MiB)  VMS  DISK(GiB)  HEARTBEAT\n" +
        "h1    active    yes     3/8  2176/16384    2     20/100  1s ago\n" +
        "h2    draining  no      0/4      0/4096    0          -  -\n",
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
      "NAME  STATE  ALIVE  CPUS  MEM(MiB)  VMS  HEARTBEAT\n",
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

// ---------------------------------------------------------------- hosts

function addHost(api: FakeApi, name: string, vms: string[]): HostView {
  const host: HostView = {
    name,
    capacity: { cpus: 4, memoryMiB: 2048 },
    usage: { cpus: vms.length, memoryMiB: 128 * vms.length, vms: vms.length },
    vms,
    state: "active",
    alive: true,
    addresses: [],
    os: "linux",
    drivers: ["qemu"],
  };
  api.hosts.push(host);
  return host;
}

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

// ---------------------------------------------------------------- networks

Deno.test("main() network create sends the flags given and prints a summary", () =>
  withApi(async (api) => {
    const result = await run(
      ["network", "create", "--name", "lan", "--ipv4", "10.0.0.0/24"],
      api,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "network lan (net-1) created: private, fdc1:d00:0:1::/64, " +
        "VNI 100 (multicast)\n",
    );
    assert.equal(api.requests[0].method, "POST");
    assert.equal(api.requests[0].url.pathname, "/v1/networks");
    assert.deepEqual(api.requests[0].body, {
      name: "lan",
      ipv4: "10.0.0.0/24",
    });
    const json = await run(
      ["network", "create", "--name", "dmz", "--json"],
      api,
    );
    assert.equal(JSON.parse(json.stdout).id, "net-2");
    const bad = await run(["network", "create", "--name", "x", "--dhcp4"], api);
    assert.equal(bad.code, 2);
    assert.equal(api.requests.length, 2);
  }));

Deno.test("main() network list and show print tables and fields", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan", { ipv4: "10.0.0.0/24", vms: ["vm-1"] });
    api.addNetwork("net-2", "pub", {
      kind: "public",
      owner: "admin",
      prefix: "2001:db8:1::/64",
      vni: undefined,
      mode: undefined,
      group: undefined,
      bridge: "br0",
      ra: false,
      dhcp: { v6: true, v4: false },
    });
    const list = await run(["network", "list"], api);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(
      list.stdout,
      "ID     NAME  KIND     PREFIX             IPV4         VNI  BRIDGE  VMS\n" +
        "net-1  lan   private  fdc1:d00:0:1::/64  10.0.0.0/24  100  -         1\n" +
        "net-2  pub   public   2001:db8:1::/64    -              -  br0       0\n",
    );
    const json = await run(["network", "list", "--json"], api);
    assert.deepEqual(
      JSON.parse(json.stdout).items.map((n: Network) => n.name),
      ["lan", "pub"],
    );

    const lan = await run(["network", "show", "lan"], api);
    assert.equal(lan.code, 0, lan.stderr);
    for (
      const line of [
        /^id: +net-1$/m,
        /^kind: +private$/m,
        /^prefix: +fdc1:d00:0:1::\/64$/m,
        /^ipv4: +10\.0\.0\.0\/24$/m,
        /^vni: +100$/m,
        /^mode: +multicast$/m,
        /^group: +ff05::64$/m,
        /^ra: +yes$/m,
        /^dhcp: +no$/m,
        /^vms: +vm-1$/m,
      ]
    ) assert.match(lan.stdout, line);
    assert.doesNotMatch(lan.stdout, /^bridge:/m);
    const pub = await run(["network", "show", "net-2"], api);
    assert.match(pub.stdout, /^bridge: +br0$/m);
    assert.match(pub.stdout, /^dhcp: +DHCPv6$/m);
    assert.match(pub.stdout, /^vms: +none$/m);
    assert.doesNotMatch(pub.stdout, /^vni:/m);
    const shown = await run(["network", "show", "lan", "--json"], api);
    assert.equal(JSON.parse(shown.stdout).id, "net-1");
  }));

Deno.test("main() finds networks by id or name and refuses unknown or ambiguous names", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan");
    const missing = await run(["network", "show", "wan"], api);
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      "error: Cannot find network wan: no network has this id or name\n",
    );
    api.addNetwork("net-2", "lan");
    const ambiguous = await run(["network", "delete", "lan"], api);
    assert.equal(ambiguous.code, 1);
    assert.equal(
      ambiguous.stderr,
      "error: Cannot pick network lan: 2 networks have this name " +
        "(net-1, net-2); use an id\n",
    );
    assert.ok(!api.requests.some((r) => r.method === "DELETE"));
  }));

Deno.test("main() network delete by name, refused while VMs use the network", () =>
  withApi(async (api) => {
    api.addNetwork("net-1", "lan", { vms: ["vm-7"] });
    const refused = await run(["network", "delete", "lan"], api);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      "error: Cannot delete network net-1: VMs vm-7 have NICs in it; " +
        "detach them first\n",
    );
    api.networks.get("net-1")!.vms = [];
    const deleted = await run(["network", "delete", "lan"], api);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(deleted.stdout, "network lan (net-1) deleted\n");
    const del = api.requests.at(-1)!;
    assert.equal(
      `${del.method} ${del.url.pathname}`,
      "DELETE /v1/networks/net-1",
    );
    api.addNetwork("net-2", "dmz");
    const json = await run(["network", "delete", "net-2", "--json"], api);
    assert.deepEqual(JSON.parse(json.stdout), { deleted: "net-2" });
  }));

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

Deno.test("main() help lists the network commands", async () => {
  const top = await run(["--help"], "http://127.0.0.1:1");
  assert.match(
    top.stdout,
    /^ucloud: manage the VMs, networks, hosts and tasks/,
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
