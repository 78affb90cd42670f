/**
 * The later steps of the port firewall test (net_firewall_test.ts): rules
 * and counters survive re-syncs and a new driver, a public network gets the
 * same protection, and removing ports, networks and the driver leaves
 * nothing behind.
 */
import assert from "node:assert/strict";
import { eui64 } from "../../core/netaddr.ts";
import { run } from "../../drivers/runner.ts";
import { nicChain } from "../../drivers/net/names.ts";
import { META_IN, META_OUT } from "../../drivers/net/nft_metadata.ts";
import type { HostNetState, NetworkSpec } from "../../drivers/net/types.ts";
import { nftTable } from "./net_hosts.ts";
import { ETH, frame } from "./frames.ts";
import { capture, sendFrames } from "./vm_wire.ts";
import { daemonsIn } from "./vmns.ts";

import {
  counted,
  type FirewallCtx,
  handles,
  type Link,
  links,
  mac,
  portOf,
  tally,
} from "./net_driver_fixtures.ts";

/** Step: re-sync and a new driver (worker restart) keep rules and counters; a spoofer never gets through. */
export async function resyncKeepsRules(c: FirewallCtx): Promise<void> {
  const {
    h1,
    vms,
    driver,
    dirs,
    d,
    state,
    n6,
    x,
    y,
    X6,
    Y6,
    SPOOF,
    m,
    e,
  } = c;
  const radvd = Number(
    await Deno.readTextFile(`${dirs.get("h1")}/net/radvd.pid`),
  );
  const before = await nftTable(h1.ns);
  const capY = await capture(vms, y);
  const spoofer = sendFrames(x, [
    e(
      y.mac,
      SPOOF,
      ETH.ip6,
      frame.udp6(X6, Y6, 4000, 4001, m("cont-mac")),
    ),
    e(
      y.mac,
      x.mac,
      ETH.ip6,
      frame.udp6(eui64(n6.prefix, SPOOF), Y6, 4000, 4001, m("cont-ip6")),
    ),
    e(
      y.mac,
      x.mac,
      ETH.ip6,
      frame.udp6(X6, Y6, 4000, 4001, m("cont-legit")),
    ),
  ], { repeat: 500, gapMs: 2 });
  await new Promise((r) => setTimeout(r, 100));
  const none = { added: [], removed: [], changed: [] };
  let t0 = performance.now();
  assert.deepEqual(await d.sync(state), none);
  console.log(
    `re-sync, nothing to do: ${(performance.now() - t0).toFixed(0)} ms`,
  );
  assert.deepEqual(await driver("h1", false).sync(state), none);
  const mid = await nftTable(h1.ns);
  assert.deepEqual(handles(mid), handles(before), "rule handles changed");
  // The base chains among them, the metadata ones too.
  for (const chain of ["from-ports", "dhcp-local", META_IN, META_OUT]) {
    assert.ok(handles(before)[chain]?.length, `no rules in ${chain}`);
  }
  for (const c of before!.chains.values()) {
    for (const [i, r] of c.rules.entries()) {
      assert.ok(
        mid!.chains.get(c.name)!.rules[i].packets >= r.packets,
        `counter of ${c.name} reset`,
      );
    }
  }
  assert.ok(
    counted(mid, nicChain(x.port), "mac-spoof") >
      counted(before, nicChain(x.port), "mac-spoof"),
    "spoofer was not counted",
  );
  // A changed port is rewritten in one transaction, twice, while the spoofer sends.
  const moved = {
    ...state,
    ports: state.ports.map((p) =>
      p.name === x.port ? { ...p, ipv6: eui64(n6.prefix, mac(0x77)) } : p
    ),
  };
  t0 = performance.now();
  assert.deepEqual(await d.sync(moved), {
    ...none,
    changed: [nicChain(x.port)],
  });
  console.log(
    `re-sync, one port's rules changed: ${
      (performance.now() - t0).toFixed(0)
    } ms`,
  );
  assert.deepEqual(await d.sync(state), {
    ...none,
    changed: [nicChain(x.port)],
  });
  await spoofer;
  await new Promise((r) => setTimeout(r, 100));
  const got = tally(await capY.stop());
  assert.equal(
    got.get("cont-mac"),
    undefined,
    "a spoofed MAC got through",
  );
  assert.equal(
    got.get("cont-ip6"),
    undefined,
    "a spoofed IPv6 source got through",
  );
  assert.ok(
    (got.get("cont-legit") ?? 0) > 0,
    "legit traffic did not pass",
  );
  const after = await nftTable(h1.ns);
  assert.deepEqual(
    handles(after)[nicChain(y.port)],
    handles(before)[nicChain(y.port)],
  );
  assert.deepEqual(
    handles(after)["from-ports"],
    handles(before)["from-ports"],
  );
  assert.equal(
    Number(await Deno.readTextFile(`${dirs.get("h1")}/net/radvd.pid`)),
    radvd,
    "radvd restarted",
  );
}

/** Step: a public network: the admin's bridge, same protection. */
export async function publicNetwork(c: FirewallCtx): Promise<void> {
  const {
    h1,
    vms,
    d,
    state,
    prefix,
    vm,
    Y6,
    m,
    e,
  } = c;
  const pub: NetworkSpec = {
    id: "pub",
    kind: "public",
    prefix: prefix(3),
    bridge: "pubbr0",
    ra: false,
    dhcp: { v6: false, v4: false },
  };
  // A port name with a dot (sysctl keys need slashes for it).
  const p = await vms.create({
    name: "p",
    hostNs: h1.ns,
    port: "veth.p",
    mac: mac(0x21),
  });
  const q = await vm("q", 0x22);
  const withPub: HostNetState = {
    ...state,
    networks: [...state.networks, pub],
    ports: [...state.ports, portOf(p, pub), portOf(q, pub)],
  };
  // Its bridge missing: its ports are left out, the others synced.
  const without = await d.sync(withPub);
  assert.deepEqual(
    without.skipped?.map((x) => x.port).sort(),
    [p.port, q.port].sort(),
  );
  assert.match(
    without.skipped![0].reason,
    /bridge pubbr0 does not exist/,
  );
  assert.deepEqual(without.added, []);
  assert.equal((await links(h1.ns)).get(p.port)?.master, undefined);
  await run("ip", [
    "-n",
    h1.ns,
    "link",
    "add",
    "pubbr0",
    "type",
    "bridge",
  ]);
  await run("ip", ["-n", h1.ns, "link", "set", "pubbr0", "up"]);
  const r = await d.sync(withPub);
  assert.deepEqual(
    new Set(r.added),
    new Set([nicChain(p.port), nicChain(q.port)]),
  );
  assert.equal((await links(h1.ns)).get(p.port)?.master, "pubbr0");
  // Reserved link-local frames teach the admin's bridge nothing either.
  assert.equal(
    (await links(h1.ns)).get("pubbr0")?.linkinfo?.info_data
      ?.no_linklocal_learn,
    1,
  );
  const P6 = eui64(pub.prefix, p.mac), Q6 = eui64(pub.prefix, q.mac);
  const before = await nftTable(h1.ns);
  const cap = await capture(vms, q);
  await sendFrames(p, [
    e(
      q.mac,
      p.mac,
      ETH.ip6,
      frame.udp6(P6, Q6, 4000, 4001, m("pub-legit")),
    ),
    e(
      q.mac,
      p.mac,
      ETH.ip6,
      frame.udp6(Y6, Q6, 4000, 4001, m("pub-ip6-spoof")),
    ),
  ], { repeat: 3 });
  await new Promise((r) => setTimeout(r, 200));
  const got = tally(await cap.stop());
  assert.equal(got.get("pub-legit"), 3);
  assert.equal(got.get("pub-ip6-spoof"), undefined);
  const after = await nftTable(h1.ns);
  assert.ok(
    counted(after, nicChain(p.port), "ip6-spoof") -
        counted(before, nicChain(p.port), "ip6-spoof") >= 3,
  );
  // Leaving: ports go, the admin's bridge stays.
  const r2 = await d.sync(state);
  assert.deepEqual(
    new Set(r2.removed),
    new Set([p.port, q.port, nicChain(p.port), nicChain(q.port)]),
  );
  const l = await links(h1.ns);
  assert.ok(l.has("pubbr0"));
  assert.equal(l.get(p.port)?.master, undefined);
}

/** Step: removing ports and networks removes their bridge, rules and radvd; teardown leaves nothing. */
export async function removalLeavesNothing(c: FirewallCtx): Promise<void> {
  const {
    h1,
    dirs,
    d,
    state,
    n6,
    x,
    y,
    x4,
    y4,
    tapPort,
  } = c;
  let l: Map<string, Link>;
  const dir = `${dirs.get("h1")}/net`;
  // n4's ports go (n4 itself stays in the state: no port, no bridge).
  const r1 = await d.sync({
    ...state,
    ports: state.ports.filter((p) => p.network === n6.id),
  });
  assert.deepEqual(
    new Set(r1.removed),
    new Set([
      "ucb202",
      x4.port,
      y4.port,
      nicChain(x4.port),
      nicChain(y4.port),
    ]),
  );
  l = await links(h1.ns);
  assert.equal(l.has("ucb202"), false);
  assert.equal(
    l.get(x4.port)?.master,
    undefined,
    "a VM's veth is only detached",
  );
  let tb = await nftTable(h1.ns);
  assert.equal(tb?.chains.has(nicChain(x4.port)), false);
  assert.equal(tb?.ports.has(x4.port), false);
  assert.ok(tb?.ports.has(x.port));
  assert.ok(
    // radvd and its privilege-separation child
    (await daemonsIn([dir], /radvd$/)).length >= 1,
    "radvd still serves n6",
  );

  // The last ports of n6 go: its bridge, the tap, radvd and its files.
  const r2 = await d.sync({ networks: [], ports: [], peers: {} });
  assert.deepEqual(
    new Set(r2.removed),
    new Set([
      "ucb201",
      "radvd",
      x.port,
      y.port,
      tapPort.name,
      nicChain(x.port),
      nicChain(y.port),
      nicChain(tapPort.name),
    ]),
  );
  l = await links(h1.ns);
  assert.equal(l.has("ucb201"), false);
  assert.equal(l.has(tapPort.name), false, "our tap is deleted");
  assert.deepEqual(await daemonsIn([dir], /radvd$/), []);
  assert.deepEqual([...Deno.readDirSync(dir)].map((f) => f.name), []);
  tb = await nftTable(h1.ns);
  assert.deepEqual([...tb!.chains.keys()], [
    "from-ports",
    "dhcp-local",
    META_IN,
    META_OUT,
  ]);
  assert.equal(tb!.ports.size, 0);

  // Teardown: no table, no device of ours.
  await d.sync(state);
  await d.teardown();
  assert.equal(await nftTable(h1.ns), null);
  l = await links(h1.ns);
  assert.deepEqual(
    [...l.values()].filter((k) => k.ifalias === "ucloud-net").map((k) =>
      k.ifname
    ),
    [],
  );
  assert.deepEqual(
    [...l.values()].filter((k) => k.master).map((k) => k.ifname),
    [],
  );
  assert.deepEqual(await daemonsIn([dir], /radvd$/), []);
}
