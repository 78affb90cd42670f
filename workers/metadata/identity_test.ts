import assert from "node:assert/strict";
import { eui64, linkLocal } from "../../core/netaddr.ts";
import { type MetadataPort, PortTable } from "./identity.ts";

const P = "fdc1:d00:0:7::/64";
function port(
  vm: string,
  n: number,
  more: Partial<MetadataPort> = {},
): MetadataPort {
  const mac = `02:c1:0d:00:01:${n.toString(16).padStart(2, "0")}`;
  return {
    name: `p${n}`,
    vm,
    slot: 0,
    network: "n1",
    bridge: "ucb7",
    mac,
    ipv6: eui64(P, mac),
    prefix: P,
    ...more,
  };
}

Deno.test("PortTable.identify() names a VM by source address only, per listener, and lists its NICs by slot", () => {
  const a0 = port("a", 1),
    a1 = port("a", 2, { slot: 1, network: "n2", bridge: "ucb8" });
  const b = port("b", 3, { ipv4: "192.0.2.5", subnet: "192.0.2.0/24" });
  const t = new PortTable([a1, b, a0]);
  assert.deepEqual(t.vms().sort(), ["a", "b"]);
  assert.deepEqual(t.bridges(), ["ucb7", "ucb8"]);
  const who = t.identify({ kind: "ipv6" }, a1.ipv6);
  assert.ok("vm" in who);
  assert.equal(who.port, a1);
  assert.deepEqual(who.nics, [a0, a1]);
  // Address forms the socket may report.
  const long = "fdc1:0d00:0000:0007:00c1:0dff:fe00:0103";
  assert.equal((t.identify({ kind: "ipv6" }, long) as { vm: string }).vm, "b");
  assert.equal(
    (t.identify(
      { kind: "link-local", bridge: "ucb7" },
      `${linkLocal(b.mac)}%5`,
    ) as { vm: string }).vm,
    "b",
  );
  assert.equal(
    (t.identify({ kind: "ipv4" }, "192.0.2.5") as { vm: string }).vm,
    "b",
  );
  // The link-local of a port on another bridge, a link-local on the global listener, the host.
  assert.deepEqual(
    t.identify({ kind: "link-local", bridge: "ucb8" }, linkLocal(b.mac)),
    { refused: "unknown address" },
  );
  assert.deepEqual(t.identify({ kind: "ipv6" }, linkLocal(b.mac)), {
    refused: "unknown address",
  });
  assert.deepEqual(t.identify({ kind: "ipv6" }, "fdc1:d00:0:7::1"), {
    refused: "unknown address",
  });
  assert.deepEqual(t.identify({ kind: "ipv4" }, a0.ipv6), {
    refused: "unknown address",
  });
});
