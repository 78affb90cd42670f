/**
 * Tests of drivers/qemu/nic_options.ts: a NIC's QMP netdev and device
 * arguments, slot checks and the MTU as virtio host_mtu.
 */
import assert from "node:assert/strict";
import { qemuArgs } from "./args.ts";
import { checkSlot, nicId, nicOptions } from "./nic_options.ts";
import { vmPaths } from "./vm_paths.ts";

Deno.test("nicOptions() gives the QMP netdev_add and device_add arguments", () => {
  assert.deepEqual(
    nicOptions({ slot: 7, tap: "t7", mac: "52:54:00:00:00:0A" }),
    {
      netdev: {
        type: "tap",
        id: "nic7",
        ifname: "t7",
        script: "no",
        downscript: "no",
      },
      device: {
        driver: "virtio-net-pci",
        id: "nic7",
        netdev: "nic7",
        mac: "52:54:00:00:00:0a",
        bus: "hp7",
        addr: "0",
      },
    },
  );
  assert.throws(
    () => nicOptions({ slot: 1, tap: "t", mac: "x" }, "nic", "plug NIC"),
    { name: "TypeError", message: /^Cannot plug NIC: nic.mac must look like/ },
  );
  assert.equal(nicId(2), "nic2");
  assert.throws(() => nicId(8), {
    name: "RangeError",
    message: /slot must be an integer from 0 to 7/,
  });
  assert.throws(() => checkSlot("0", "slot", "unplug NIC"), {
    name: "TypeError",
    message: /^Cannot unplug NIC: slot must be a number, got string$/,
  });
});

Deno.test("a NIC's MTU becomes virtio host_mtu (a number for QMP, text on the command line)", () => {
  const nic = { slot: 0, tap: "t0", mac: "52:54:00:00:00:01", mtu: 1430 };
  assert.equal(nicOptions(nic).device.host_mtu, 1430);
  assert.equal(
    nicOptions({ slot: 0, tap: "t0", mac: "52:54:00:00:00:01" }).device
      .host_mtu,
    undefined,
  );
  const args = qemuArgs(
    {
      id: "vm-1",
      name: "m",
      cpus: 1,
      memoryMiB: 128,
      boot: { kernel: "/k" },
      nics: [nic],
    },
    vmPaths("/var/lib/ucloud", "vm-1"),
    "tcg",
  );
  assert.ok(
    args.includes(
      "virtio-net-pci,id=nic0,netdev=nic0,mac=52:54:00:00:00:01,bus=hp0,addr=0,host_mtu=1430",
    ),
    args.join(" "),
  );
  for (const mtu of [575, 65_536, 1500.5]) {
    assert.throws(() => nicOptions({ ...nic, mtu }, "nic", "plug NIC"), {
      name: "RangeError",
      message: /^Cannot plug NIC: nic.mtu must be an integer from 576/,
    });
  }
});
