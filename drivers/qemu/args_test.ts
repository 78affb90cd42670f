/**
 * Tests of qemuArgs() (drivers/qemu/args.ts): the qemu command line for kernel
 * and disk boots and cold-plugged NICs, and the refusal of bad specs naming
 * the field.
 */
import assert from "node:assert/strict";
import { NOCLOUD_SERIAL, qemuArgs, type QemuSpec } from "./args.ts";
import { vmPaths } from "./vm_paths.ts";

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

Deno.test("qemuArgs() builds a sandboxed q35 command line booting a kernel as the user", () => {
  const args = qemuArgs(kernelSpec(), paths, "tcg", { user: "ucloud-qemu" });
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
    "-vga",
    "std",
    "-vnc",
    "unix:/var/lib/ucloud/vms/vm-1/vnc.sock",
    "-no-shutdown",
    "-sandbox",
    "on,obsolete=deny,spawn=deny,resourcecontrol=deny",
    "-runas",
    "ucloud-qemu",
    "-pidfile",
    "/var/lib/ucloud/vms/vm-1/qemu.pid",
    "-chardev",
    "socket,id=qmp,path=/var/lib/ucloud/vms/vm-1/qmp.sock,server=on,wait=off",
    "-mon",
    "chardev=qmp,mode=control",
    "-chardev",
    "socket,id=serial0,path=/var/lib/ucloud/vms/vm-1/console.sock," +
    "server=on,wait=off,logfile=/var/lib/ucloud/vms/vm-1/serial.log," +
    "logappend=on",
    "-serial",
    "chardev:serial0",
    ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((n) => [
      "-device",
      `pcie-root-port,id=hp${n},chassis=${n + 1},slot=${n + 1},bus=pcie.0`,
    ]),
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

Deno.test("qemuArgs() attaches a qcow2 disk as virtio-blk with cache=none for a disk boot", () => {
  const args = qemuArgs(
    kernelSpec({ boot: { disk: "/images/vm-1.qcow2", format: "qcow2" } }),
    paths,
    "tcg",
  );
  assert.deepEqual(values(args, "-drive"), [
    "file=/images/vm-1.qcow2,format=qcow2,if=none,id=disk0,cache=none",
  ]);
  assert.deepEqual(
    values(args, "-device").at(-1),
    "virtio-blk-pci,drive=disk0,bootindex=0",
  );
  assert.ok(!args.includes("-kernel"));
  assert.ok(!args.includes("-initrd"));
});

Deno.test("qemuArgs() opens an RBD disk as raw through librbd, the format named", () => {
  const disk = "rbd:ucloud/disk.vm-1:id=admin:conf=/st,ate/ceph.conf";
  const args = qemuArgs(
    kernelSpec({ boot: { disk, format: "raw" } }),
    paths,
    "tcg",
  );
  assert.deepEqual(values(args, "-drive"), [
    "file=rbd:ucloud/disk.vm-1:id=admin:conf=/st,,ate/ceph.conf,format=raw," +
    "if=none,id=disk0,cache=none",
  ]);
  assert.equal(
    values(args, "-device").at(-1),
    "virtio-blk-pci,drive=disk0,bootindex=0",
  );
});

Deno.test("qemuArgs() opens the disk with the cache mode it is given, and refuses others", () => {
  const spec = kernelSpec({
    boot: { disk: "/images/vm-1.qcow2", format: "qcow2" },
  });
  assert.deepEqual(
    values(qemuArgs(spec, paths, "tcg", { diskCache: "writeback" }), "-drive"),
    ["file=/images/vm-1.qcow2,format=qcow2,if=none,id=disk0,cache=writeback"],
  );
  assert.throws(
    () =>
      qemuArgs(spec, paths, "tcg", {
        diskCache: "unsafe" as unknown as "none",
      }),
    { name: "TypeError", message: /diskCache must be "none" or "writeback"/ },
  );
});

Deno.test("qemuArgs() sets the SMBIOS system serial it is given (commas doubled), none by default, and refuses a bad one", () => {
  assert.equal(
    NOCLOUD_SERIAL,
    "ds=nocloud-net;s=http://[fd00:ec2::254]/nocloud/",
  );
  assert.deepEqual(values(qemuArgs(kernelSpec(), paths, "tcg"), "-smbios"), []);
  assert.deepEqual(
    values(
      qemuArgs(kernelSpec(), paths, "tcg", { smbiosSerial: NOCLOUD_SERIAL }),
      "-smbios",
    ),
    ["type=1,serial=ds=nocloud-net;s=http://[fd00:ec2::254]/nocloud/"],
  );
  assert.deepEqual(
    values(
      qemuArgs(kernelSpec(), paths, "tcg", { smbiosSerial: "a,b=c" }),
      "-smbios",
    ),
    ["type=1,serial=a,,b=c"],
  );
  for (const bad of ["", "x\ny", "\u00e9", "x".repeat(256), 7]) {
    assert.throws(
      () =>
        qemuArgs(kernelSpec(), paths, "tcg", {
          smbiosSerial: bad as unknown as string,
        }),
      { name: "TypeError", message: /smbiosSerial must be 1 to 255 printable/ },
    );
  }
});

Deno.test("qemuArgs() escapes commas inside option values", () => {
  const args = qemuArgs(
    kernelSpec({
      name: "a,b",
      boot: { disk: "/img/x,y.qcow2", format: "qcow2" },
    }),
    vmPaths("/st,ate", "vm-1"),
    "tcg",
  );
  assert.deepEqual(values(args, "-name"), ["guest=a,,b"]);
  assert.equal(
    values(args, "-drive")[0],
    "file=/img/x,,y.qcow2,format=qcow2,if=none,id=disk0,cache=none",
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
    [
      { boot: { disk: "", format: "qcow2" } },
      "TypeError",
      /boot.disk must be an absolute path/,
    ],
    [
      { boot: { disk: "/d.qcow2" } },
      "TypeError",
      /boot.format must be "qcow2" or "raw", got undefined/,
    ],
    [
      { boot: { disk: "/d.vmdk", format: "vmdk" } },
      "TypeError",
      /boot.format must be "qcow2" or "raw", got "vmdk"/,
    ],
    [
      { boot: { disk: "rbd:ucloud/d:conf=/c@x", format: "raw" } },
      "TypeError",
      /boot.disk must be rbd:<pool>\/<image>/,
    ],
    [
      { boot: { disk: "rbd:ucloud", format: "raw" } },
      "TypeError",
      /boot.disk must be rbd:<pool>\/<image>/,
    ],
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
  assert.throws(
    () =>
      qemuArgs(
        kernelSpec(),
        { ...paths, console: "/" + "c".repeat(107) },
        "tcg",
      ),
    { name: "RangeError", message: /console socket path/ },
  );
  assert.throws(
    () => qemuArgs(kernelSpec(), { ...paths, console: "console.sock" }, "tcg"),
    { name: "TypeError", message: /paths.console must be an absolute path/ },
  );
  assert.throws(
    () =>
      qemuArgs(kernelSpec(), { ...paths, vnc: "/" + "v".repeat(107) }, "tcg"),
    { name: "RangeError", message: /VNC socket path/ },
  );
  assert.throws(
    () => qemuArgs(kernelSpec(), { ...paths, vnc: "vnc.sock" }, "tcg"),
    { name: "TypeError", message: /paths.vnc must be an absolute path/ },
  );
});

Deno.test("qemuArgs() cold-plugs each NIC on its slot's root port", () => {
  const args = qemuArgs(
    kernelSpec({
      nics: [
        { slot: 3, tap: "uc-tap-3", mac: "52:54:00:AB:CD:03" },
        { slot: 0, tap: "t0", mac: "02:00:00:00:00:00" },
      ],
    }),
    paths,
    "tcg",
  );
  assert.deepEqual(values(args, "-netdev"), [
    "tap,id=nic3,ifname=uc-tap-3,script=no,downscript=no",
    "tap,id=nic0,ifname=t0,script=no,downscript=no",
  ]);
  assert.deepEqual(values(args, "-device").slice(8), [
    "virtio-net-pci,id=nic3,netdev=nic3,mac=52:54:00:ab:cd:03,bus=hp3,addr=0",
    "virtio-net-pci,id=nic0,netdev=nic0,mac=02:00:00:00:00:00,bus=hp0,addr=0",
  ]);
  assert.deepEqual(
    values(qemuArgs(kernelSpec({ nics: [] }), paths, "tcg"), "-netdev"),
    [],
  );
});

Deno.test("qemuArgs() rejects bad NICs naming the field", () => {
  const nic = { slot: 0, tap: "tap0", mac: "52:54:00:00:00:01" };
  const bad: [unknown, string, RegExp][] = [
    [{}, "TypeError", /nics must be an array/],
    [[null], "TypeError", /nics\[0\] must be an object/],
    [
      [{ ...nic, slot: 8 }],
      "RangeError",
      /nics\[0\].slot must be an integer from 0 to 7, got 8/,
    ],
    [[{ ...nic, slot: -1 }], "RangeError", /nics\[0\].slot must be/],
    [[{ ...nic, slot: 0.5 }], "RangeError", /nics\[0\].slot must be/],
    [[{ ...nic, slot: "1" }], "TypeError", /nics\[0\].slot must be a number/],
    [
      [nic, { ...nic, tap: "tap1", mac: "52:54:00:00:00:02" }],
      "RangeError",
      /nics\[1\].slot 0 is already used by another NIC/,
    ],
    [
      [{ ...nic, tap: "" }],
      "TypeError",
      /nics\[0\].tap must be 1 to 15 characters/,
    ],
    [[{ ...nic, tap: "a".repeat(16) }], "TypeError", /nics\[0\].tap must be/],
    [[{ ...nic, tap: "Tap0" }], "TypeError", /nics\[0\].tap must be/],
    [[{ ...nic, tap: "tap,0" }], "TypeError", /nics\[0\].tap must be/],
    [
      [{ ...nic, mac: "52:54:00:00:00" }],
      "TypeError",
      /nics\[0\].mac must look like/,
    ],
    [
      [{ ...nic, mac: "52-54-00-00-00-01" }],
      "TypeError",
      /nics\[0\].mac must look like/,
    ],
    [[{ ...nic, mac: 5 }], "TypeError", /nics\[0\].mac must look like/],
    [
      [{ ...nic, mac: "01:00:5e:00:00:01" }],
      "TypeError",
      /nics\[0\].mac must be a unicast MAC/,
    ],
  ];
  for (const [nics, name, message] of bad) {
    assert.throws(
      () => qemuArgs(kernelSpec({ nics } as Partial<QemuSpec>), paths, "tcg"),
      {
        name,
        message: new RegExp(`^Cannot build qemu arguments: ${message.source}`),
      },
      JSON.stringify(nics),
    );
  }
  assert.equal(
    qemuArgs(
      kernelSpec({ nics: [{ ...nic, tap: "a".repeat(15) }] }),
      paths,
      "tcg",
    )
      .includes("tap,id=nic0,ifname=aaaaaaaaaaaaaaa,script=no,downscript=no"),
    true,
  );
});

Deno.test("qemuArgs() rejects a user that is not a plain user name", () => {
  for (const user of ["", "Root", "a b", "-x", "a,b", "x".repeat(33)]) {
    assert.throws(
      () => qemuArgs(kernelSpec(), paths, "tcg", { user }),
      /user must match/,
    );
  }
  assert.equal(
    values(qemuArgs(kernelSpec(), paths, "tcg"), "-runas").length,
    0,
  );
  assert.equal(
    values(qemuArgs(kernelSpec(), paths, "tcg"), "-sandbox")[0],
    "on,obsolete=deny,spawn=deny,resourcecontrol=deny",
  );
});
