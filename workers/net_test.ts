/**
 * Tests of workers/net.ts: the ports and networks a host should have, derived
 * from VM and network documents.
 */
import assert from "node:assert/strict";
import type { Network, Vm } from "../core/schemas.ts";
import { networkSpec, wantedState } from "./net.ts";
import { legacyTapName, tapName } from "../drivers/net/mod.ts";

const net = (id: string, extra: Partial<Network> = {}): Network => ({
  id,
  name: id,
  owner: "alice",
  kind: "private",
  prefix: "fdc1:d00::/64",
  vni: 100,
  mode: "multicast",
  group: "ff05::64",
  ra: true,
  dhcp: { v6: false, v4: false },
  vms: [],
  createdAt: "2026-01-01T00:00:00Z",
  ...extra,
});

const vm = (
  id: string,
  host: string,
  phase: Vm["status"]["phase"],
  nets: string[],
): Vm => ({
  id,
  owner: "alice",
  spec: { name: id, cpus: 1, memory: 128, image: "tiny" },
  nics: nets.map((network, slot) => ({
    slot,
    network,
    mac: `02:c1:0d:00:0${id.at(-1)}:0${slot}`,
    ipv6: `fdc1:d00::c1:dff:fe00:${slot}`,
    state: "attached" as const,
  })),
  desired: "running",
  status: { phase, host, updatedAt: "2026-01-01T00:00:00Z" },
  createdAt: "2026-01-01T00:00:00Z",
});

Deno.test("wantedState: ports of VMs whose process may run here, their networks only", () => {
  const a = net("net-a");
  const b = net("net-b", {
    vni: 101,
    mode: "unicast",
    prefix: "fdc1:d00:0:1::/64",
  });
  const c = net("net-c", { vni: 102 });
  const s = wantedState(
    "h1",
    [
      vm("vm-1", "h1", "running", ["net-a", "net-b"]),
      vm("vm-2", "h1", "stopped", ["net-c"]), // stopped: no ports
      vm("vm-3", "h2", "running", ["net-c"]), // other host
      vm("vm-4", "h1", "deleting", ["net-a"]), // qemu may still run
      vm("vm-5", "h1", "running", ["net-gone"]), // unknown network: skipped
    ],
    [a, b, c],
    [
      { network: "net-b", host: "h1", address: "fd00::1" },
      { network: "net-b", host: "h3", address: "fd00::3" },
      { network: "net-b", host: "h2", address: "fd00::2" },
      { network: "net-a", host: "h2", address: "fd00::2" },
    ],
  );
  assert.deepEqual(s.networks.map((n) => n.id).sort(), ["net-a", "net-b"]);
  assert.deepEqual(
    s.ports.map((p) => p.name).sort(),
    ["uct02c10d000100", "uct02c10d000101", "uct02c10d000400"],
  );
  const p = s.ports.find((x) => x.name === tapName("02:c1:0d:00:01:01"))!;
  assert.deepEqual(p, {
    name: "uct02c10d000101",
    formerName: legacyTapName("vm-1", 1),
    network: "net-b",
    mac: "02:c1:0d:00:01:01",
    ipv6: "fdc1:d00::c1:dff:fe00:1",
  });
  // Unicast peers: the other members' underlay addresses; multicast: none.
  assert.deepEqual(s.peers, { "net-b": ["fd00::2", "fd00::3"] });
});

Deno.test("networkSpec: what the driver needs of a network document", () => {
  assert.deepEqual(networkSpec(net("net-a")), {
    id: "net-a",
    kind: "private",
    prefix: "fdc1:d00::/64",
    vni: 100,
    mode: "multicast",
    group: "ff05::64",
    ra: true,
    dhcp: { v6: false, v4: false },
  });
  assert.deepEqual(
    networkSpec(net("net-p", {
      kind: "public",
      bridge: "pub0",
      vni: undefined,
      mode: undefined,
      group: undefined,
      ra: false,
      ipv4: "198.51.100.0/24",
    })),
    {
      id: "net-p",
      kind: "public",
      prefix: "fdc1:d00::/64",
      ipv4: "198.51.100.0/24",
      bridge: "pub0",
      ra: false,
      dhcp: { v6: false, v4: false },
    },
  );
});
