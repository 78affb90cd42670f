/**
 * The SMBIOS system serial of QemuDriver (drivers/qemu/driver.ts) as a
 * real guest sees it: the tiny test guest under TCG reads
 * `/sys/class/dmi/id/product_serial`.
 */
import assert from "node:assert/strict";
import { guestRun } from "../../tests/helpers/console.ts";
import {
  guestSpec,
  serialHasMarker,
  waitFor,
  withDriver,
} from "./_test_guest.ts";
import { NOCLOUD_SERIAL } from "./args.ts";
import { QemuDriver } from "./driver.ts";

Deno.test("QemuDriver gives each VM the NoCloud SMBIOS serial by default, the one it is given, or none with null, as the guest reads it", async () => {
  await withDriver(async (byDefault, stateDir) => {
    const drivers = {
      "vm-serial-default": byDefault,
      "vm-serial-custom": new QemuDriver({
        stateDir,
        accel: "tcg",
        smbiosSerial: "ds=nocloud-net;s=http://x,y/",
      }),
      "vm-serial-none": new QemuDriver({
        stateDir,
        accel: "tcg",
        smbiosSerial: null,
      }),
    };
    const serials = Object.fromEntries(
      await Promise.all(
        Object.entries(drivers).map(async ([id, driver]) => {
          const handle = await driver.start(await guestSpec(id));
          await waitFor("the guest marker", serialHasMarker(handle), 120_000);
          const out = await guestRun(
            handle.console!,
            "cat /sys/class/dmi/id/product_serial",
            { timeoutMs: 60_000 },
          );
          await driver.stop(handle, { force: true });
          return [id, out.trim()];
        }),
      ),
    );
    assert.deepEqual(serials, {
      "vm-serial-default": NOCLOUD_SERIAL,
      "vm-serial-custom": "ds=nocloud-net;s=http://x,y/",
      // qemu's SeaBIOS tables without a serial: an empty string.
      "vm-serial-none": "",
    });
  });
});
