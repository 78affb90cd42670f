/**
 * planState() (drivers/net/plan.ts), without I/O: a bad port or a network
 * that cannot be made is left out with its reason, the rest is kept.
 */
import assert from "node:assert/strict";
import { planState } from "./plan.ts";
import type { HostNetState, NetworkSpec, PortSpec } from "./types.ts";

const lan: NetworkSpec = {
  id: "lan",
  kind: "private",
  prefix: "fdc1:d00:0:5::/64",
  ipv4: "198.51.100.0/24",
  vni: 5,
  mode: "multicast",
  group: "ff05::5",
  ra: true,
  dhcp: { v6: true, v4: true },
};
const port = (n: number, more: Partial<PortSpec> = {}): PortSpec => ({
  name: `uct0000000${n}`,
  network: "lan",
  mac: `02:c1:0d:00:00:${n.toString(16).padStart(2, "0")}`,
  ipv6: `fdc1:d00:0:5::${n + 10}`,
  ipv4: `198.51.100.${n + 10}`,
  ...more,
});
const plan = (s: Partial<HostNetState>) =>
  planState({ networks: [lan], ports: [], peers: {}, ...s }, { vxlan: true });

Deno.test("planState() leaves out each bad port with its reason and keeps the rest", () => {
  const r = plan({
    ports: [
      port(1),
      port(2, { ipv6: "fdc1:d00:0:5::1" }),
      port(3, { ipv4: "300.1.1.1" }),
      port(4, { ipv6: "fdc1:d00:0:6::4" }),
      port(5, { ipv4: "203.0.113.5" }),
      port(6, { mac: "02:c1:0d:00:00:01" }),
      port(7, { network: "gone" }),
      port(8, { name: "ucb5" }),
      port(9, { mac: "nope" }),
      { ...port(10), name: "uct0000000a" },
      { ...port(11), name: "uct0000000a" },
    ],
  });
  assert.deepEqual([...r.ports.keys()], ["uct00000001"]);
  const why = Object.fromEntries(r.skipped.map((x) => [x.port, x.reason]));
  assert.match(why.uct0000000a, /Two ports are named uct0000000a/);
  assert.match(why.uct00000002, /fdc1:d00:0:5::1 is a service address/);
  assert.match(why.uct00000003, /bad IPv4 address 300\.1\.1\.1/);
  assert.match(why.uct00000004, /is not in network lan/);
  assert.match(why.uct00000005, /203\.0\.113\.5 is not in network lan/);
  assert.match(why.uct00000006, /port uct00000001 has MAC/);
  assert.match(why.uct00000007, /no network gone/);
  assert.match(why.ucb5, /name of a bridge/);
  assert.match(why.uct00000009, /Not a MAC address/);
  assert.ok(r.skipped.every((x) => !x.retry));
  // Only the good ones, and the network they need.
  const ok = plan({ ports: [port(1), port(2, { ipv6: "fdc1:d00:0:5::1" })] });
  assert.deepEqual([...ok.ports.keys()], ["uct00000001"]);
  assert.deepEqual([...ok.nets.keys()], ["lan"]);
  assert.equal(ok.ports.get("uct00000001")!.rules.chain, "nic-uct00000001");
});

Deno.test("planState() leaves out the ports of a network that cannot be made, not the others", () => {
  const twin = { ...lan, id: "twin", prefix: "fdc1:d00:0:6::/64" };
  const r = plan({
    networks: [lan, twin],
    ports: [
      port(1),
      port(2, { network: "twin", ipv6: "fdc1:d00:0:6::12" }),
    ],
  });
  assert.deepEqual([...r.ports.keys()], ["uct00000001"]);
  assert.deepEqual(r.skipped, [{
    port: "uct00000002",
    network: "twin",
    reason: "Networks lan and twin have VNI 5",
  }]);
  assert.throws(() => plan({ networks: [lan, lan] }), /Duplicate network lan/);
});
