/**
 * Tests of detectAccel() (drivers/qemu/accel.ts): kvm or tcg as configured,
 * and what `auto` picks from /dev/kvm and the CPU flags.
 */
import assert from "node:assert/strict";
import { detectAccel } from "./accel.ts";

const VMX = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\n\n";
const SVM = "processor\t: 0\nflags\t\t: fpu svm lm\n\n";
const NONE = "processor\t: 0\nflags\t\t: fpu vme de pse sse2 hypervisor\n" +
  "vmx flags\t: vnmi\n\n";

async function withFiles(
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ucloud-accel-" });
  try {
    await Deno.writeTextFile(`${dir}/kvm`, "");
    await Deno.writeTextFile(`${dir}/vmx`, VMX);
    await Deno.writeTextFile(`${dir}/svm`, SVM);
    await Deno.writeTextFile(`${dir}/none`, NONE);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("detectAccel() returns kvm and tcg as configured", async () => {
  const missing = { kvmPath: "/nonexistent", cpuinfoPath: "/nonexistent" };
  assert.equal(await detectAccel("kvm", missing), "kvm");
  assert.equal(await detectAccel("tcg", missing), "tcg");
});

Deno.test("detectAccel() auto picks kvm when kvm opens and the cpu has vmx or svm", async () => {
  await withFiles(async (dir) => {
    for (const flags of ["vmx", "svm"]) {
      assert.equal(
        await detectAccel("auto", {
          kvmPath: `${dir}/kvm`,
          cpuinfoPath: `${dir}/${flags}`,
        }),
        "kvm",
      );
    }
  });
});

Deno.test("detectAccel() auto picks tcg without vmx/svm flags", async () => {
  await withFiles(async (dir) => {
    assert.equal(
      await detectAccel("auto", {
        kvmPath: `${dir}/kvm`,
        cpuinfoPath: `${dir}/none`,
      }),
      "tcg",
    );
  });
});

Deno.test("detectAccel() auto picks tcg when kvm does not open", async () => {
  await withFiles(async (dir) => {
    assert.equal(
      await detectAccel("auto", {
        kvmPath: `${dir}/missing`,
        cpuinfoPath: `${dir}/vmx`,
      }),
      "tcg",
    );
    assert.equal(
      await detectAccel("auto", {
        kvmPath: `${dir}/kvm`,
        cpuinfoPath: `${dir}/missing`,
      }),
      "tcg",
    );
  });
});

Deno.test("detectAccel() rejects an unknown mode", async () => {
  await assert.rejects(
    () => detectAccel("hvf" as "auto"),
    { name: "TypeError", message: /mode must be/ },
  );
});
