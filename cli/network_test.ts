/** parseArgs() and main() of the network commands. */
import assert from "node:assert/strict";
import type { Network } from "./client.ts";
import { parseArgs } from "./parse.ts";
import { run, usageError, withApi } from "./_test_api.ts";

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
