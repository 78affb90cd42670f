import assert from "node:assert/strict";
import { qemuArgs, type QemuSpec, vmPaths } from "./args.ts";

const paths = vmPaths("/var/lib/ucloud", "vm-1");

function kernelSpec(overrides: Partial<QemuSpec> = {}): QemuSpec {
  return {
    id: "vm-1",
    name: "web",
    cpus: 2,
    memoryMiB: 128,
    boot: {
      kernel: "/img/vmlinux",
      initrd: "/img/initrd.cpio.gz",
      append: "console=ttyS0 quiet",
    },
    ...overrides,
  };
}

/** The value following `flag`, for each time it occurs. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => arg === flag ? [args[i + 1]] : []);
}

Deno.test("vmPaths() puts the files under <stateDir>/vms/<id>", () => {
  assert.deepEqual(vmPaths("/var/lib/ucloud/", "vm-1"), {
    dir: "/var/lib/ucloud/vms/vm-1",
    pidfile: "/var/lib/ucloud/vms/vm-1/qemu.pid",
    qmp: "/var/lib/ucloud/vms/vm-1/qmp.sock",
    serial: "/var/lib/ucloud/vms/vm-1/serial.log",
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

Deno.test("vmPaths() rejects a stateDir that makes the QMP socket path too long", () => {
  // "/vms/" + 64-char id + "/qmp.sock" is 78 bytes, so 29 bytes of stateDir fit.
  const id = "a".repeat(64);
  assert.equal(vmPaths("/" + "s".repeat(28), id).qmp.length, 107);
  assert.throws(() => vmPaths("/" + "s".repeat(29), id), {
    name: "RangeError",
    message: /QMP socket path .* is 108 bytes, more than the 107/,
  });
});

Deno.test("qemuArgs() builds a daemonized q35 command line booting a kernel", () => {
  const args = qemuArgs(kernelSpec(), paths, "tcg");
  assert.deepEqual(args, [
    "-name",
    "guest=web",
    "-machine",
    "q35",
    "-accel",
    "tcg,thread=multi",
    "-cpu",
    "max",
    "-smp",
    "2",
    "-m",
    "128M",
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-shutdown",
    "-daemonize",
    "-pidfile",
    "/var/lib/ucloud/vms/vm-1/qemu.pid",
    "-chardev",
    "socket,id=qmp,path=/var/lib/ucloud/vms/vm-1/qmp.sock,server=on,wait=off",
    "-mon",
    "chardev=qmp,mode=control",
    "-chardev",
    "file,id=serial0,path=/var/lib/ucloud/vms/vm-1/serial.log",
    "-serial",
    "chardev:serial0",
    "-kernel",
    "/img/vmlinux",
    "-initrd",
    "/img/initrd.cpio.gz",
    "-append",
    "console=ttyS0 quiet",
  ]);
});

Deno.test("qemuArgs() uses -accel kvm and -cpu host for kvm", () => {
  const args = qemuArgs(kernelSpec(), paths, "kvm");
  assert.deepEqual(values(args, "-accel"), ["kvm"]);
  assert.deepEqual(values(args, "-cpu"), ["host"]);
});

Deno.test("qemuArgs() leaves out -initrd and -append when the spec has none", () => {
  const args = qemuArgs(kernelSpec({ boot: { kernel: "/k" } }), paths, "tcg");
  assert.deepEqual(values(args, "-kernel"), ["/k"]);
  assert.ok(!args.includes("-initrd"));
  assert.ok(!args.includes("-append"));
  assert.ok(!args.includes("-drive"));
});

Deno.test("qemuArgs() attaches a qcow2 disk as virtio-blk for a disk boot", () => {
  const args = qemuArgs(
    kernelSpec({ boot: { disk: "/images/vm-1.qcow2" } }),
    paths,
    "tcg",
  );
  assert.deepEqual(values(args, "-drive"), [
    "file=/images/vm-1.qcow2,format=qcow2,if=none,id=disk0",
  ]);
  assert.deepEqual(values(args, "-device"), [
    "virtio-blk-pci,drive=disk0,bootindex=0",
  ]);
  assert.ok(!args.includes("-kernel"));
});

Deno.test("qemuArgs() escapes commas inside option values", () => {
  const args = qemuArgs(
    kernelSpec({ name: "a,b", boot: { disk: "/img/x,y.qcow2" } }),
    vmPaths("/st,ate", "vm-1"),
    "tcg",
  );
  assert.deepEqual(values(args, "-name"), ["guest=a,,b"]);
  assert.equal(
    values(args, "-drive")[0],
    "file=/img/x,,y.qcow2,format=qcow2,if=none,id=disk0",
  );
  assert.equal(
    values(args, "-chardev")[0],
    "socket,id=qmp,path=/st,,ate/vms/vm-1/qmp.sock,server=on,wait=off",
  );
  assert.equal(values(args, "-pidfile")[0], "/st,ate/vms/vm-1/qemu.pid");
});

Deno.test("qemuArgs() accepts the bounds of cpus and memoryMiB", () => {
  for (const [cpus, memoryMiB] of [[1, 64], [64, 1_048_576]]) {
    const args = qemuArgs(kernelSpec({ cpus, memoryMiB }), paths, "tcg");
    assert.deepEqual(values(args, "-smp"), [String(cpus)]);
    assert.deepEqual(values(args, "-m"), [`${memoryMiB}M`]);
  }
});

Deno.test("qemuArgs() rejects bad fields naming the field", () => {
  const bad: [Partial<QemuSpec> | Record<string, unknown>, string, RegExp][] = [
    [{ id: "VM_1" }, "TypeError", /id must match/],
    [{ id: "" }, "TypeError", /id must match/],
    [{ id: "a".repeat(65) }, "TypeError", /id must match/],
    [{ name: "" }, "TypeError", /name must be 1 to 128/],
    [{ name: "x".repeat(129) }, "TypeError", /name must be 1 to 128/],
    [{ name: "a\nb" }, "TypeError", /name must be/],
    [{ cpus: 0 }, "RangeError", /cpus must be an integer from 1 to 64, got 0/],
    [{ cpus: 65 }, "RangeError", /cpus must be an integer from 1 to 64/],
    [{ cpus: 1.5 }, "RangeError", /cpus must be an integer/],
    [{ cpus: NaN }, "RangeError", /cpus must be an integer/],
    [{ cpus: "2" }, "TypeError", /cpus must be a number, got string/],
    [
      { memoryMiB: 63 },
      "RangeError",
      /memoryMiB must be an integer from 64 to 1048576/,
    ],
    [{ memoryMiB: 1_048_577 }, "RangeError", /memoryMiB must be/],
    [{ boot: null }, "TypeError", /boot must be/],
    [{ boot: {} }, "TypeError", /exactly one of kernel and disk/],
    [
      { boot: { kernel: "/k", disk: "/d" } },
      "TypeError",
      /exactly one of kernel and disk/,
    ],
    [
      { boot: { kernel: "vmlinux" } },
      "TypeError",
      /boot.kernel must be an absolute path/,
    ],
    [
      { boot: { kernel: "/k", initrd: "initrd" } },
      "TypeError",
      /boot.initrd must be an absolute path/,
    ],
    [
      { boot: { kernel: "/k", append: 3 } },
      "TypeError",
      /boot.append must be a string/,
    ],
    [{ boot: { disk: "" } }, "TypeError", /boot.disk must be an absolute path/],
  ];
  for (const [overrides, name, message] of bad) {
    assert.throws(
      () => qemuArgs(kernelSpec(overrides as Partial<QemuSpec>), paths, "tcg"),
      { name, message },
      JSON.stringify(overrides),
    );
  }
});

Deno.test("qemuArgs() rejects a bad accel and bad paths", () => {
  assert.throws(
    () => qemuArgs(kernelSpec(), paths, "hvf" as "tcg"),
    { name: "TypeError", message: /accel must be "kvm" or "tcg"/ },
  );
  assert.throws(
    () => qemuArgs(kernelSpec(), { ...paths, pidfile: "qemu.pid" }, "tcg"),
    { name: "TypeError", message: /paths.pidfile must be an absolute path/ },
  );
  assert.throws(
    () =>
      qemuArgs(kernelSpec(), { ...paths, qmp: "/" + "q".repeat(107) }, "tcg"),
    { name: "RangeError", message: /QMP socket path/ },
  );
});
