/**
 * Tests of vmPaths() (drivers/qemu/vm_paths.ts): where a VM's files live and
 * the refusal of bad state dirs, ids and too long socket paths.
 */
import assert from "node:assert/strict";
import { vmPaths } from "./vm_paths.ts";

Deno.test("vmPaths() puts the files under <stateDir>/vms/<id>", () => {
  assert.deepEqual(vmPaths("/var/lib/ucloud/", "vm-1"), {
    dir: "/var/lib/ucloud/vms/vm-1",
    pidfile: "/var/lib/ucloud/vms/vm-1/qemu.pid",
    qmp: "/var/lib/ucloud/vms/vm-1/qmp.sock",
    console: "/var/lib/ucloud/vms/vm-1/console.sock",
    vnc: "/var/lib/ucloud/vms/vm-1/vnc.sock",
    serial: "/var/lib/ucloud/vms/vm-1/serial.log",
    log: "/var/lib/ucloud/vms/vm-1/qemu.log",
  });
});

Deno.test("vmPaths() rejects a relative stateDir and a bad id", () => {
  assert.throws(() => vmPaths("state", "vm-1"), {
    name: "TypeError",
    message: /stateDir must be an absolute path/,
  });
  assert.throws(() => vmPaths("/s", "../etc"), {
    name: "TypeError",
    message: /id must match/,
  });
});

Deno.test("vmPaths() rejects a stateDir that makes a socket path too long", () => {
  // "/vms/" + 64-char id + "/console.sock" is 82 bytes (the longest socket),
  // so 25 bytes of stateDir fit.
  const id = "a".repeat(64);
  assert.equal(vmPaths("/" + "s".repeat(24), id).console.length, 107);
  assert.throws(() => vmPaths("/" + "s".repeat(25), id), {
    name: "RangeError",
    message: /console socket path .* is 108 bytes, more than the 107/,
  });
});
