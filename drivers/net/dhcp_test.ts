/**
 * Tests of drivers/net/dhcp.ts, dhcp_server.ts, dnsmasq_config.ts and
 * dnsmasq.ts: which ports a network's DHCP server serves, the dnsmasq
 * configuration (checked by dnsmasq itself), and DhcpServers running real
 * dnsmasq in a network namespace.
 */
import assert from "node:assert/strict";
import { eui64 } from "../../core/netaddr.ts";
import { run } from "../runner.ts";
import { DhcpServers } from "./dhcp.ts";
import { dhcpFiles, dnsmasqConfig } from "./dnsmasq_config.ts";
import { type DhcpServer, dhcpServerOf } from "./dhcp_server.ts";
import { netnsExec } from "./exec.ts";
import type { NetworkSpec, PortSpec } from "./types.ts";

const PREFIX = "fdc1:d00:0:5::/64";
const legacy: NetworkSpec = {
  id: "net-1",
  kind: "private",
  prefix: PREFIX,
  ipv4: "198.51.100.0/24",
  vni: 0x301,
  mode: "multicast",
  group: "ff05::301",
  ra: true,
  dhcp: { v6: true, v4: true },
};

function port(n: number, extra: Partial<PortSpec> = {}): PortSpec {
  const mac = `02:C1:0D:00:00:${n.toString(16).padStart(2, "0")}`;
  return {
    name: `uct0000000${n}`,
    network: legacy.id,
    mac,
    ipv6: eui64(PREFIX, mac),
    ipv4: `198.51.100.${n}`,
    ...extra,
  };
}

const at = { bridge: "ucb301", mtu: 1430 };

Deno.test("dhcpServerOf() serves the network's local ports by MAC, v4 and v6, from <subnet+1> and <prefix>::1", () => {
  const s = dhcpServerOf(legacy, {
    ...at,
    ports: [
      port(3),
      port(2),
      port(4, { ipv4: undefined }),
      port(5, { network: "other" }),
    ],
  })!;
  assert.deepEqual(s, {
    network: "net-1",
    device: "ucd301",
    netns: "ucd301",
    bridge: "ucb301",
    mtu: 1430,
    v4: { subnet: "198.51.100.0/24", address: "198.51.100.1/24" },
    v6: { prefix: "fdc1:d00:0:5::/64", address: "fdc1:d00:0:5::1/64" },
    hosts: [
      {
        mac: "02:c1:0d:00:00:02",
        ipv4: "198.51.100.2",
        ipv6: "fdc1:d00:0:5:c1:dff:fe00:2",
      },
      {
        mac: "02:c1:0d:00:00:03",
        ipv4: "198.51.100.3",
        ipv6: "fdc1:d00:0:5:c1:dff:fe00:3",
      },
      { mac: "02:c1:0d:00:00:04", ipv6: "fdc1:d00:0:5:c1:dff:fe00:4" },
    ],
  });
  assert.equal(
    dhcpServerOf(legacy, { ...at, ports: [], hostNetns: "uc-1a2b-h1" })
      ?.netns,
    "uc-1a2b-h1-ucd301",
  );
  // v4 only: ports without IPv4 are not served; v6 only: no IPv4 at all.
  const v4 = dhcpServerOf({ ...legacy, dhcp: { v4: true, v6: false } }, {
    ...at,
    ports: [port(2), port(4, { ipv4: undefined })],
  })!;
  assert.equal(v4.v6, undefined);
  assert.deepEqual(v4.hosts, [{
    mac: "02:c1:0d:00:00:02",
    ipv4: "198.51.100.2",
  }]);
  const v6 = dhcpServerOf({ ...legacy, dhcp: { v4: false, v6: true } }, {
    ...at,
    ports: [port(2)],
  })!;
  assert.equal(v6.v4, undefined);
  assert.deepEqual(v6.hosts, [{
    mac: "02:c1:0d:00:00:02",
    ipv6: "fdc1:d00:0:5:c1:dff:fe00:2",
  }]);
  assert.equal(
    dhcpServerOf({ ...legacy, dhcp: { v4: false, v6: false } }, {
      ...at,
      ports: [port(2)],
    }),
    null,
  );
  // A public network: the device is named by the hash of its id.
  const pub = dhcpServerOf({
    id: "net-pub",
    kind: "public",
    prefix: PREFIX,
    bridge: "br0",
    ra: false,
    dhcp: { v4: false, v6: true },
  }, { bridge: "br0", mtu: 1500, ports: [] })!;
  assert.match(pub.device, /^ucd[0-9a-f]{8}$/);
  assert.equal(pub.netns, pub.device);
});

Deno.test("dhcpServerOf() refuses what dnsmasq would serve wrong", () => {
  const of = (net: NetworkSpec, ports: PortSpec[]) =>
    dhcpServerOf(net, { ...at, ports });
  assert.throws(
    () => of({ ...legacy, ipv4: undefined }, []),
    /DHCPv4 needs an ipv4 subnet/,
  );
  for (const ipv4 of ["198.51.100.0", "198.51.100.1", "198.51.100.255"]) {
    assert.throws(
      () => of(legacy, [port(2, { ipv4 })]),
      /not a client address of 198\.51\.100\.0\/24/,
      ipv4,
    );
  }
  assert.throws(() => of(legacy, [port(2, { ipv4: "203.0.113.2" })]), /not a/);
  assert.throws(
    () => of(legacy, [port(2, { ipv6: "fdc1:d00:0:5::1" })]),
    /not a client address of fdc1:d00:0:5::\/64/,
  );
  assert.throws(
    () => of(legacy, [port(2, { ipv6: "fdc1:d00:0:6::2" })]),
    /not a client/,
  );
  assert.throws(
    () => of(legacy, [port(2), port(3, { mac: port(2).mac.toLowerCase() })]),
    /Ports uct00000002 and uct00000003 have MAC 02:c1:0d:00:00:02/,
  );
  assert.throws(() => of({ ...legacy, id: "../x" }, []), /Bad network id/);
});

Deno.test("dnsmasqConfig(): static hosts by MAC, no DNS, no router, the metadata route on-link, files in the server's directory", () => {
  const s = dhcpServerOf(legacy, {
    ...at,
    ports: [port(2), port(4, { ipv4: undefined })],
  })!;
  assert.equal(
    dnsmasqConfig(s, "/var/lib/ucloud/net/dhcp/net-1"),
    [
      "# Written by ucloud (drivers/net/dhcp.ts) for network net-1; changes are overwritten.",
      "port=0",
      "no-resolv",
      "no-hosts",
      "bind-interfaces",
      "interface=eth0",
      "dhcp-authoritative",
      "dhcp-range=198.51.100.0,static,255.255.255.0,1h",
      "dhcp-option=option:router",
      "dhcp-option=option:classless-static-route,169.254.169.254/32,0.0.0.0",
      "dhcp-range=fdc1:d00:0:5::,static,64,1h",
      "dhcp-host=02:c1:0d:00:00:02,198.51.100.2,[fdc1:d00:0:5:c1:dff:fe00:2]",
      "dhcp-host=02:c1:0d:00:00:04,[fdc1:d00:0:5:c1:dff:fe00:4]",
      "dhcp-leasefile=/var/lib/ucloud/net/dhcp/net-1/leases",
      "pid-file=/var/lib/ucloud/net/dhcp/net-1/dnsmasq.pid",
      "log-facility=/var/lib/ucloud/net/dhcp/net-1/dnsmasq.log",
      "quiet-dhcp",
      "quiet-dhcp6",
      "",
    ].join("\n"),
  );
  const v4 = dhcpServerOf({ ...legacy, ipv4: "203.0.113.64/26" }, {
    ...at,
    ports: [port(2, { ipv4: "203.0.113.126" })],
  })!;
  assert.match(
    dnsmasqConfig(v4, "/d"),
    /\ndhcp-range=203\.0\.113\.64,static,255\.255\.255\.192,1h\n/,
  );
  assert.match(
    dnsmasqConfig(v4, "/d"),
    /\ndhcp-host=02:c1:0d:00:00:02,203\.0\.113\.126,\[fdc1:d00:0:5:c1:dff:fe00:2\]\n/,
  );
});

Deno.test("dnsmasqConfig() passes dnsmasq's own syntax check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ucdhcp-" });
  try {
    const s = dhcpServerOf(legacy, { ...at, ports: [port(2)] })!;
    await Deno.writeTextFile(`${dir}/dnsmasq.conf`, dnsmasqConfig(s, dir));
    const { stderr } = await run("dnsmasq", [
      "--test",
      `--conf-file=${dir}/dnsmasq.conf`,
    ]);
    assert.match(stderr, /syntax check OK/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The inode of a process's network namespace. */
async function netnsOfPid(pid: number): Promise<number | null> {
  return (await Deno.stat(`/proc/${pid}/ns/net`)).ino;
}

Deno.test("DhcpServers makes, leaves alone, restarts and removes a server", async () => {
  const host = `ucdhcp-${crypto.randomUUID().slice(0, 8)}`;
  const dir = await Deno.makeTempDir({ prefix: "ucdhcp-" });
  await run("ip", ["netns", "add", host]);
  const exec = netnsExec(host);
  const dhcp = new DhcpServers({ dir: `${dir}/dhcp`, exec, hostNetns: host });
  const server = (ports: PortSpec[], net = legacy): DhcpServer =>
    dhcpServerOf(net, { ...at, ports, hostNetns: host })!;
  const s = server([port(2)]);
  try {
    await exec("ip", ["link", "add", "ucb301", "type", "bridge"]);
    await exec("ip", ["link", "set", "ucb301", "up"]);
    const none = { added: [], changed: [], removed: [] };

    assert.deepEqual(await dhcp.apply([s]), { ...none, added: ["ucd301"] });
    const pid = await dhcp.pid("net-1");
    assert.ok(pid !== null, "dnsmasq runs");
    assert.equal(
      await netnsOfPid(pid),
      (await Deno.stat(`/run/netns/${s.netns}`)).ino,
      "dnsmasq runs in the DHCP namespace",
    );
    const [veth] = JSON.parse(
      (await exec("ip", ["-j", "link", "show", "ucd301"])).stdout,
    );
    assert.equal(veth.master, "ucb301");
    assert.equal(veth.ifalias, "ucloud-net");
    assert.equal(veth.mtu, 1430);
    const sysctl = async (e: typeof exec, key: string) =>
      (await e("sysctl", ["-n", key])).stdout.trim();
    assert.equal(await sysctl(exec, "net.ipv6.conf.ucd301.disable_ipv6"), "1");
    const inner = netnsExec(s.netns);
    assert.equal(await sysctl(inner, "net.ipv6.conf.eth0.accept_ra"), "0");
    assert.equal(await sysctl(inner, "net.ipv6.conf.eth0.autoconf"), "0");
    const addrs = JSON.parse(
      (await netnsExec(s.netns)("ip", ["-j", "addr", "show", "dev", "eth0"]))
        .stdout,
    )[0].addr_info.filter((a: { scope: string }) => a.scope === "global")
      .map((a: { local: string; prefixlen: number }) =>
        `${a.local}/${a.prefixlen}`
      );
    assert.deepEqual(new Set(addrs), new Set([s.v4!.address, s.v6!.address]));

    // Same servers: nothing happens, also for a new instance.
    assert.deepEqual(await dhcp.apply([s]), none);
    assert.deepEqual(
      await new DhcpServers({ dir: `${dir}/dhcp`, exec, hostNetns: host })
        .apply([s]),
      none,
    );
    assert.equal(await dhcp.pid("net-1"), pid);

    // Hosts changed: restarted with the new config.
    const s2 = server([port(2), port(3)]);
    assert.deepEqual(await dhcp.apply([s2]), { ...none, changed: ["ucd301"] });
    const pid2 = await dhcp.pid("net-1");
    assert.ok(pid2 !== null && pid2 !== pid, "dnsmasq restarted");
    assert.equal(confOfPid(pid), null, "the old dnsmasq still runs");
    const files = dhcpFiles(`${dir}/dhcp/net-1`);
    assert.equal(
      await Deno.readTextFile(files.conf),
      dnsmasqConfig(s2, `${dir}/dhcp/net-1`),
    );

    // DHCPv6 off: restarted, its address gone.
    const s3 = server([port(2)], { ...legacy, dhcp: { v4: true, v6: false } });
    assert.deepEqual(await dhcp.apply([s3]), { ...none, changed: ["ucd301"] });
    const pid3 = await dhcp.pid("net-1");
    assert.ok(pid3 !== null && pid3 !== pid2, "dnsmasq restarted");
    assert.doesNotMatch(
      (await netnsExec(s.netns)("ip", ["addr", "show", "dev", "eth0"])).stdout,
      /fdc1:d00:0:5::1\//,
    );

    // A daemon that died is started again.
    Deno.kill(pid3, "SIGKILL");
    while (await dhcp.pid("net-1") !== null) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(await dhcp.apply([s3]), { ...none, changed: ["ucd301"] });
    assert.ok(await dhcp.pid("net-1") !== null);

    // The namespace deleted behind its back: made again.
    const pid4 = (await dhcp.pid("net-1"))!;
    Deno.kill(pid4, "SIGKILL");
    await run("ip", ["netns", "del", s.netns]);
    assert.deepEqual(await dhcp.apply([s3]), { ...none, added: ["ucd301"] });
    assert.ok(await dhcp.pid("net-1") !== null);

    // No server wanted: daemon, veth, namespace and files go.
    const last = (await dhcp.pid("net-1"))!;
    assert.deepEqual(await dhcp.apply([]), { ...none, removed: ["ucd301"] });
    assert.equal(confOfPid(last), null, "dnsmasq still runs");
    assert.deepEqual(
      JSON.parse(
        (await exec("ip", ["-j", "link", "show", "type", "veth"]))
          .stdout,
      ),
      [],
    );
    assert.equal(await exists(`/run/netns/${s.netns}`), false);
    assert.deepEqual([...Deno.readDirSync(`${dir}/dhcp`)], []);

    await dhcp.apply([s]);
    assert.deepEqual(await dhcp.stopAll(), ["ucd301"]);
    assert.equal(await exists(`${dir}/dhcp`), false);
    assert.deepEqual(await dhcp.stopAll(), []);
  } finally {
    await dhcp.stopAll().catch(() => {});
    await run("ip", ["netns", "del", host]).catch(() => {});
    await run("ip", ["netns", "del", s.netns]).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

function confOfPid(pid: number): string | null {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`) || null;
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
