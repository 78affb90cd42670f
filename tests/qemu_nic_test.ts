/**
 * VM NICs with the real qemu driver and the tiny guest under TCG: a NIC
 * cold-plugged from the spec, hot-plug and hot-unplug through QMP, seen from
 * inside the guest through its serial console.
 */
import assert from "node:assert/strict";
import { QemuDriver } from "../drivers/qemu/driver.ts";
import type { QemuHandle } from "../drivers/qemu/handle.ts";
import { QmpClient } from "../drivers/qemu/qmp.ts";
import { run } from "../drivers/runner.ts";
import { killQemus, tinyBoot, waitFor } from "./helpers/cluster.ts";
import { guestExec, guestRun, waitConsole } from "./helpers/console.ts";

const MARKER = "UCLOUD-GUEST-READY";

/** The guest's link with `mac` as "<name> <flags>", or "" when none has it. */
async function linkWithMac(handle: QemuHandle, mac: string): Promise<string> {
  return (await guestRun(
    handle.console!,
    `for d in /sys/class/net/eth*; do [ "$(cat $d/address)" = ${mac} ] && echo \${d##*/} $(cat $d/flags); done; true`,
  )).trim();
}

/** Waits until the guest has an interface with `mac` that is up. */
async function waitLinkUp(handle: QemuHandle, mac: string): Promise<string> {
  const line = await waitFor(
    `a guest link with MAC ${mac} that is up`,
    async () => {
      const line = await linkWithMac(handle, mac);
      const [, flags] = line.split(" ");
      return flags !== undefined && (Number(flags) & 1) === 1 ? line : "";
    },
    20_000,
    200,
  );
  return line.split(" ")[0];
}

/** Runs one QMP command on the VM. */
async function qmp<T = unknown>(
  handle: QemuHandle,
  command: string,
  args?: Record<string, unknown>,
): Promise<T> {
  const client = await QmpClient.connect(handle.qmp);
  try {
    return await client.execute<T>(command, args);
  } finally {
    await client.close();
  }
}

Deno.test("QemuDriver plugs and unplugs NICs the guest sees", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "uc-nic-" });
  const suffix = crypto.randomUUID().slice(0, 6);
  const taps = [`ucn${suffix}-0`, `ucn${suffix}-1`];
  const macs = ["52:54:00:5a:00:00", "52:54:00:5a:00:01"];
  try {
    for (const tap of taps) {
      await run("ip", ["tuntap", "add", "dev", tap, "mode", "tap"]);
    }
    const driver = new QemuDriver({ stateDir, accel: "tcg" });
    const started = Date.now();
    const handle = await driver.start({
      id: "vm-nic",
      name: "nic test",
      cpus: 1,
      memoryMiB: 128,
      boot: await tinyBoot(),
      nics: [{ slot: 0, tap: taps[0], mac: macs[0] }],
    });
    assert.equal(handle.console, `${stateDir}/vms/vm-nic/console.sock`);
    await waitFor(
      "the boot marker in serial.log",
      async () =>
        (await Deno.readTextFile(handle.serial).catch(() => "")).includes(
          MARKER,
        ),
    );
    const bootMs = Date.now() - started;
    assert.equal(
      (await guestRun(handle.console!, "echo typed $((6 * 7))")).trim(),
      "typed 42",
    );
    assert.deepEqual(
      await guestExec(handle.console!, "ls /no-such-file >/dev/null 2>&1"),
      { output: "", code: 1 },
    );
    const consoleMs = Date.now() - started - bootMs;
    // A hung command times out; the next command interrupts it (Ctrl-C).
    await assert.rejects(
      guestExec(handle.console!, "sleep 600", { timeoutMs: 1_000 }),
      /waited 1000 ms for the end of `sleep 600`/,
    );
    assert.equal(await guestRun(handle.console!, "echo back"), "back\n");
    await waitConsole(handle.console!, /\n# /, 5_000, { send: "\n" });
    assert.equal(await waitLinkUp(handle, macs[0]), "eth0");
    assert.deepEqual(await driver.listNics(handle), [0]);

    const nic1 = { slot: 1, tap: taps[1], mac: macs[1] };
    let t = Date.now();
    await driver.plugNic(handle, nic1);
    const plugMs = Date.now() - t;
    assert.equal(await waitLinkUp(handle, macs[1]), "eth1");
    const plugSeenMs = Date.now() - t;
    assert.deepEqual(await driver.listNics(handle), [0, 1]);
    await driver.plugNic(handle, nic1); // already there: fine
    await driver.plugNic(handle, { ...nic1, mac: macs[1].toUpperCase() });
    await assert.rejects(
      driver.plugNic(handle, { ...nic1, mac: "52:54:00:5a:00:99" }),
      /Cannot plug NIC into slot 1 of vm vm-nic: the slot holds a NIC with MAC 52:54:00:5a:00:01; unplug it first/,
    );
    assert.deepEqual(await driver.listNics(handle), [0, 1]);

    t = Date.now();
    await driver.unplugNic(handle, 1);
    const unplugMs = Date.now() - t;
    assert.deepEqual(await driver.listNics(handle), [0]);
    assert.equal(await linkWithMac(handle, macs[1]), "");
    await driver.unplugNic(handle, 1); // empty slot: fine
    await driver.unplugNic(handle, 7);
    await assert.rejects(driver.unplugNic(handle, 8), {
      name: "RangeError",
      message: /Cannot unplug NIC: slot must be an integer from 0 to 7/,
    });

    // The netdev went with the device: the slot takes a NIC again.
    await driver.plugNic(handle, nic1);
    await waitLinkUp(handle, macs[1]);
    assert.deepEqual(await driver.listNics(handle), [0, 1]);

    // A paused guest cannot release the NIC: the unplug times out, naming
    // the slot; once the guest runs again, a retry finishes it.
    await qmp(handle, "stop");
    await assert.rejects(
      driver.unplugNic(handle, 1, { timeoutMs: 1_000 }),
      /^Error: Cannot unplug NIC from slot 1 of vm vm-nic: the guest did not release it within 1000 ms$/,
    );
    await qmp(handle, "cont");
    await driver.unplugNic(handle, 1);
    assert.deepEqual(await driver.listNics(handle), [0]);
    assert.equal(await linkWithMac(handle, macs[1]), "");

    // A failed plug leaves nothing behind: not a tap (netdev_add fails) ...
    await assert.rejects(
      driver.plugNic(handle, { slot: 2, tap: "lo", mac: macs[1] }),
      /^Error: Cannot plug NIC into slot 2 of vm vm-nic: Cannot run QMP command netdev_add/,
    );
    // ... and a root port taken by another device (device_add fails).
    await qmp(handle, "device_add", {
      driver: "virtio-rng-pci",
      id: "rng3",
      bus: "hp3",
    });
    await assert.rejects(
      driver.plugNic(handle, { slot: 3, tap: taps[1], mac: macs[1] }),
      /^Error: Cannot plug NIC into slot 3 of vm vm-nic: Cannot run QMP command device_add/,
    );
    assert.deepEqual(await driver.listNics(handle), [0]);
    const network = await qmp<string>(handle, "human-monitor-command", {
      "command-line": "info network",
    });
    assert.match(network, /nic0/);
    assert.doesNotMatch(network, /nic[123]/);

    const serial = await Deno.readTextFile(handle.serial);
    assert.match(serial, /typed 42/, "the console is logged to serial.log");
    console.log(
      `boot (start to marker) ${bootMs} ms, first console commands ${consoleMs} ms, ` +
        `plugNic ${plugMs} ms (up in the guest after ${plugSeenMs} ms), ` +
        `unplugNic ${unplugMs} ms`,
    );
    await driver.stop(handle);
    await assert.rejects(driver.listNics(handle), /Cannot list NICs/);
  } finally {
    await killQemus(stateDir);
    for (const tap of taps) {
      await run("ip", ["link", "del", tap]).catch(() => {});
    }
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("a NIC plugged and unplugged while the guest still boots is released once it is up", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "uc-nic-early-" });
  const tap = `ucn${crypto.randomUUID().slice(0, 6)}-e`;
  try {
    await run("ip", ["tuntap", "add", "dev", tap, "mode", "tap"]);
    const driver = new QemuDriver({ stateDir, accel: "tcg" });
    const handle = await driver.start({
      id: "vm-early",
      name: "early",
      cpus: 1,
      memoryMiB: 128,
      boot: await tinyBoot(),
    });
    // Before the guest's ACPI is up: the first device_del goes unheard.
    await driver.plugNic(handle, { slot: 1, tap, mac: "52:54:00:5a:00:0e" });
    const t0 = Date.now();
    await driver.unplugNic(handle, 1, { timeoutMs: 15_000 });
    assert.deepEqual(await driver.listNics(handle), []);
    console.log(`unplug during boot finished after ${Date.now() - t0} ms`);
    await driver.stop(handle);
  } finally {
    await killQemus(stateDir);
    await run("ip", ["link", "del", tap]).catch(() => {});
    await Deno.remove(stateDir, { recursive: true });
  }
});
