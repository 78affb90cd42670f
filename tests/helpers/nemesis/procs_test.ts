/**
 * Unit tests of procs.ts: reading host and VM from a sim or qemu process's
 * arguments, and `vmProcs()` finding the VM processes of each host.
 */
import assert from "node:assert/strict";
import { parseQemuArgs, parseSimArgv0, vmProcs } from "./procs.ts";

const ROOT = "/tmp/uc-1/hosts";

Deno.test("parseSimArgv0() reads host and VM from a sim pidfile under the hosts root", () => {
  assert.deepEqual(
    parseSimArgv0(`ucloud-sim ${ROOT}/h2/vms/vm-a/sim.pid`, ROOT),
    { host: "h2", vm: "vm-a" },
  );
  assert.equal(
    parseSimArgv0(`ucloud-sim /other/h2/vms/vm-a/sim.pid`, ROOT),
    null,
  );
  assert.equal(parseSimArgv0(`sleep infinity`, ROOT), null);
  assert.equal(
    parseSimArgv0(`ucloud-sim ${ROOT}/h2/vms/vm-a/qemu.pid`, ROOT),
    null,
  );
});

Deno.test("parseQemuArgs() reads host and VM from qemu's -pidfile under the hosts root", () => {
  const args = (pidfile: string, bin = "qemu-system-x86_64") => [
    bin,
    "-name",
    "web",
    "-daemonize",
    "-pidfile",
    pidfile,
  ];
  assert.deepEqual(
    parseQemuArgs(args(`${ROOT}/h3/vms/vm-b/qemu.pid`), ROOT),
    { host: "h3", vm: "vm-b" },
  );
  assert.deepEqual(
    parseQemuArgs(
      args(`${ROOT}/h1/vms/vm-c/qemu.pid`, "/usr/bin/qemu-system-x86_64"),
      ROOT,
    ),
    { host: "h1", vm: "vm-c" },
  );
  assert.equal(
    parseQemuArgs(args(`/var/lib/ucloud/vms/vm-b/qemu.pid`), ROOT),
    null,
  );
  assert.equal(parseQemuArgs(args(`${ROOT}/h3/vms/vm-b/sim.pid`), ROOT), null);
  assert.equal(
    parseQemuArgs(args(`${ROOT}/h3/vms/vm-b/qemu.pid`, "sleep"), ROOT),
    null,
  );
  assert.equal(parseQemuArgs(["qemu-system-x86_64", "-pidfile"], ROOT), null);
});

Deno.test("vmProcs() finds a qemu of each host by its -pidfile and ignores others", async () => {
  const root = await Deno.makeTempDir({ prefix: "uc-procs-" });
  const children: Deno.ChildProcess[] = [];
  try {
    // Real qemu processes that do nothing (-S: no guest code runs).
    for (
      const [host, file] of [["h1", "qemu.pid"], ["h2", "qemu.pid"], [
        "h3",
        "other.pid",
      ]]
    ) {
      const dir = `${root}/${host}/vms/vm-q`;
      await Deno.mkdir(dir, { recursive: true });
      children.push(
        new Deno.Command("qemu-system-x86_64", {
          args: [
            "-S",
            "-machine",
            "none",
            "-display",
            "none",
            "-nodefaults",
            "-pidfile",
            `${dir}/${file}`,
          ],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    const want = children.slice(0, 2).map((c, i) => ({
      pid: c.pid,
      vm: "vm-q",
      host: `h${i + 1}`,
    }));
    const end = Date.now() + 10_000;
    let seen = vmProcs(root, "qemu");
    while (seen.length < 2 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      seen = vmProcs(root, "qemu");
    }
    assert.deepEqual(seen.sort((a, b) => a.host.localeCompare(b.host)), want);
    assert.deepEqual(vmProcs(root, "sim"), []);
  } finally {
    for (const c of children) {
      c.kill("SIGKILL");
      await c.status;
    }
    await Deno.remove(root, { recursive: true });
  }
});
